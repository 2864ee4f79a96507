// API keys are never made in the browser: the CLI creates them, so a stolen console session
// cannot mint new credentials.
import { h, page } from "../ui.js";

export function render(main) {
  page(main, "API keys",
    h("p", {}, "API keys are created and revoked with the command line only, on a machine with access to the database:"),
    h("pre", {}, h("code", {}, "loyalty apikey create --role admin --name \"Jane at head office\"\nloyalty apikey create --role pos --name \"Store 12 tills\"\nloyalty apikey list\nloyalty apikey revoke ID")),
    h("p", {}, "The secret is printed once; the server keeps only its hash. This console keeps the key you signed in with in this tab's session storage and forgets it when the tab closes or you sign out."));
}
