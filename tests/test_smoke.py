from tests.helpers import MEMBER, enroll, record


async def test_purchase_earns_points(admin, pos):
    member_id = await enroll(pos, email="a@example.com")
    payload = await record(pos, member_id, "25.99")
    assert payload["errors"] == []
    assert payload["pointsAwarded"] == 25
    data = await admin.data(MEMBER, id=member_id)
    assert data["member"]["points"]["available"] == 25
