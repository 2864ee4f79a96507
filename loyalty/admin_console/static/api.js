// The one way the console talks to the server: POST /graphql with the admin key of this
// browser session. The key lives in sessionStorage only (never a URL or a cookie).
const KEY = "loyalty.adminKey";
const ENDPOINT = new URL("../graphql", window.location.href).href;

export const session = {
  key: () => window.sessionStorage.getItem(KEY),
  signIn: (key) => window.sessionStorage.setItem(KEY, key),
  signOut: () => window.sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

export async function gql(query, variables = {}, key = session.key()) {
  const response = await fetch(ENDPOINT, {
    method: "POST",
    credentials: "omit",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`The server answered ${response.status}.`, "HTTP");
  }
  if (body.errors?.length) {
    const code = body.errors[0].extensions?.code;
    throw new ApiError(body.errors.map((e) => e.message).join(" "), code);
  }
  return body.data;
}

// Mutations that move points or stock need a key of their own per attempt.
export function idempotencyKey() {
  const bytes = window.crypto.getRandomValues(new Uint8Array(16));
  return "console-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

let program = null;

export async function currentProgram(refresh = false) {
  if (!program || refresh) {
    program = (await gql("{ program { name currency timeZone } }")).program;
  }
  return program;
}
