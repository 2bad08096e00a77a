"""Directory attributes and dynamic membership groups through Microsoft's Python Graph SDK:
attributes set with the SDK's User model drive a dynamic group's rule, and licenses follow: a
department change moves the user from one licensed dynamic group to another, its license with it."""

from msgraph.generated.groups.item.assign_license.assign_license_post_request_body import (
    AssignLicensePostRequestBody as GroupAssignLicenseBody,
)
from msgraph.generated.models.assigned_license import AssignedLicense
from msgraph.generated.models.group import Group
from msgraph.generated.models.on_premises_extension_attributes import OnPremisesExtensionAttributes
from msgraph.generated.models.user import User
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder
from kiota_abstractions.base_request_configuration import RequestConfiguration

from uuid import UUID

from conftest import E1, E3, run, wait_until
from test_licensing import create_user, unique


def test_attributes_set_with_the_sdk_drive_a_dynamic_group():
    async def scenario(client):
        department = unique("dept")
        rule = f'user.department -eq "{department}" -and user.extensionAttribute1 -ne null'
        group = await client.groups.post(
            Group(
                display_name=unique("dynamic"),
                mail_enabled=False,
                mail_nickname=unique("dynamic"),
                security_enabled=True,
                group_types=["DynamicMembership"],
                membership_rule=rule,
                membership_rule_processing_state="On",
            )
        )
        assert group.group_types == ["DynamicMembership"]
        assert group.membership_rule == rule
        assert group.membership_rule_processing_state == "On"
        await client.groups.by_group_id(group.id).assign_license.post(
            GroupAssignLicenseBody(add_licenses=[AssignedLicense(sku_id=UUID(E3))], remove_licenses=[])
        )
        user = await create_user(client, unique("dyn"), usage_location="US")
        await client.users.by_user_id(user.id).patch(
            User(
                department=department,
                job_title="Engineer",
                on_premises_extension_attributes=OnPremisesExtensionAttributes(extension_attribute1="x"),
            )
        )
        configuration = RequestConfiguration(
            query_parameters=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
                select=["department", "jobTitle", "onPremisesExtensionAttributes"]
            )
        )
        read = await client.users.by_user_id(user.id).get(request_configuration=configuration)
        assert read.department == department
        assert read.job_title == "Engineer"
        assert read.on_premises_extension_attributes.extension_attribute1 == "x"

        async def member_ids():
            members = await client.groups.by_group_id(group.id).members.get()
            return [member.id for member in members.value]

        assert await member_ids() == [user.id]

        async def states():
            return (
                await client.users.by_user_id(user.id).get(
                    request_configuration=RequestConfiguration(
                        query_parameters=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
                            select=["licenseAssignmentStates"]
                        )
                    )
                )
            ).license_assignment_states

        async def licensed():
            return any(str(state.sku_id) == E3 and state.state == "Active" for state in await states())

        await wait_until(licensed, "the dynamic group's E3 on the user")

        # A second licensed dynamic group for another department: moving the user there with the
        # SDK's User model takes the first group's E3 away and brings the second group's E1.
        other = unique("other")
        sales = await client.groups.post(
            Group(
                display_name=unique("dynamic"),
                mail_enabled=False,
                mail_nickname=unique("dynamic"),
                security_enabled=True,
                group_types=["DynamicMembership"],
                membership_rule=f'user.department -eq "{other}"',
                membership_rule_processing_state="On",
            )
        )
        await client.groups.by_group_id(sales.id).assign_license.post(
            GroupAssignLicenseBody(add_licenses=[AssignedLicense(sku_id=UUID(E1))], remove_licenses=[])
        )
        await client.users.by_user_id(user.id).patch(User(department=other))
        assert await member_ids() == []

        async def moved():
            now = await states()
            from_first = [state for state in now if state.assigned_by_group == group.id]
            from_second = [
                state
                for state in now
                if state.assigned_by_group == sales.id and str(state.sku_id) == E1 and state.state == "Active"
            ]
            return not from_first and len(from_second) == 1

        await wait_until(moved, "the license moved with the department")

    run(scenario)
