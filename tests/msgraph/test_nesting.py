"""Nested groups with Microsoft's own Graph SDK (issue 17): a group added to a group with
`members.ref.post`, listed by `members` as a group, in `transitive_members` and the user's
`transitive_member_of`; a cycle refused with an ODataError; with licensd's transitive licensing on
(through the admin API: Graph has no such setting), the nested member's state names the group
that carries the license; taking the group out removes it."""

import pytest
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.reference_create import ReferenceCreate

from conftest import E3, admin_ok, run, wait_until
from test_licensing import add_member, assign_to_group, create_group, create_user, licenses, states_of, unique


async def nest(client, group_id, member_group_id):
    await client.groups.by_group_id(group_id).members.ref.post(
        ReferenceCreate(odata_id=f"https://graph.microsoft.com/v1.0/groups/{member_group_id}")
    )


def test_nested_groups_with_the_sdk():
    async def scenario(client):
        all_staff = await create_group(client, unique("All Staff"))
        engineering = await create_group(client, unique("Engineering"))
        alice = await create_user(client, unique("alice"))
        await add_member(client, engineering.id, alice.id)
        await nest(client, all_staff.id, engineering.id)
        await assign_to_group(client, all_staff.id, add=licenses(E3))

        members = await client.groups.by_group_id(all_staff.id).members.get()
        assert [(member.odata_type, member.id) for member in members.value] == [
            ("#microsoft.graph.group", engineering.id)
        ]
        transitive = await client.groups.by_group_id(all_staff.id).transitive_members.get()
        assert {member.id for member in transitive.value} == {alice.id, engineering.id}
        reached = await client.users.by_user_id(alice.id).transitive_member_of.get()
        assert {group.id for group in reached.value} == {engineering.id, all_staff.id}

        with pytest.raises(ODataError) as refused:
            await nest(client, engineering.id, all_staff.id)
        assert refused.value.response_status_code == 400
        assert "cycle" in refused.value.error.message

        admin_ok("PATCH", "/licensd/v1/settings", {"transitiveLicensing": True})
        try:
            async def licensed():
                states = await states_of(client, alice.id)
                return any(str(state.assigned_by_group) == all_staff.id and state.state == "Active" for state in states)

            await wait_until(licensed, "alice licensed through Engineering")
            await client.groups.by_group_id(all_staff.id).members.by_directory_object_id(engineering.id).ref.delete()

            async def unlicensed():
                return not await states_of(client, alice.id)

            await wait_until(unlicensed, "alice's license removed with the nesting")
        finally:
            admin_ok("PATCH", "/licensd/v1/settings", {"transitiveLicensing": False})

    run(scenario)
