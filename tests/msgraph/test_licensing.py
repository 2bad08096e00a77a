"""Client compatibility: the seed's scenarios walked end to end with Microsoft's own Graph SDK
(msgraph-sdk from PyPI, unmodified) against licensd — users and groups, products assigned to
groups, states becoming Active or Error with the right error, membersWithLicenseErrors, groups
filtered on errors, fixes and reprocessing, subscribedSkus.consumedUnits, and paging 250+ users
with the SDK's PageIterator."""

import json
import urllib.request
import uuid
from uuid import UUID

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.groups.item.assign_license.assign_license_post_request_body import (
    AssignLicensePostRequestBody as GroupAssignLicenseBody,
)
from msgraph.generated.groups.item.group_item_request_builder import GroupItemRequestBuilder
from msgraph.generated.models.assigned_license import AssignedLicense
from msgraph.generated.models.group import Group
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_profile import PasswordProfile
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.user import User
from msgraph.generated.users.item.assign_license.assign_license_post_request_body import (
    AssignLicensePostRequestBody as UserAssignLicenseBody,
)
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core.tasks.page_iterator import PageIterator

from conftest import (
    BASE_URL,
    E1,
    E3,
    EMS,
    EXCHANGE_PLAN_2,
    WORKPLACE_ANALYTICS,
    admin_ok,
    run,
    wait_until,
)


def unique(name):
    """A name no other test (or earlier run on the same server) uses."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def create_user(client, name, usage_location="US", proxy_addresses=None):
    return await client.users.post(
        User(
            account_enabled=True,
            display_name=name,
            user_principal_name=f"{name}@contoso.com",
            mail_nickname=name,
            usage_location=usage_location,
            proxy_addresses=proxy_addresses if proxy_addresses is not None else [f"SMTP:{name}@contoso.com"],
            password_profile=PasswordProfile(password="not stored by licensd", force_change_password_next_sign_in=True),
        )
    )


async def create_group(client, name):
    return await client.groups.post(
        Group(display_name=name, mail_enabled=False, mail_nickname=name.replace(" ", ""), security_enabled=True)
    )


async def add_member(client, group_id, user_id):
    await client.groups.by_group_id(group_id).members.ref.post(
        ReferenceCreate(odata_id=f"https://graph.microsoft.com/v1.0/directoryObjects/{user_id}")
    )


def licenses(*sku_ids, disabled_plans=None):
    return [AssignedLicense(sku_id=UUID(sku), disabled_plans=disabled_plans or []) for sku in sku_ids]


async def assign_to_user(client, user_id, add=(), remove=()):
    return await client.users.by_user_id(user_id).assign_license.post(
        UserAssignLicenseBody(add_licenses=list(add), remove_licenses=[UUID(sku) for sku in remove])
    )


async def assign_to_group(client, group_id, add=(), remove=()):
    return await client.groups.by_group_id(group_id).assign_license.post(
        GroupAssignLicenseBody(add_licenses=list(add), remove_licenses=[UUID(sku) for sku in remove])
    )


async def states_of(client, user_id):
    configuration = RequestConfiguration(
        query_parameters=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
            select=["id", "licenseAssignmentStates"]
        )
    )
    user = await client.users.by_user_id(user_id).get(request_configuration=configuration)
    return user.license_assignment_states


async def state_of(client, user_id, sku, group_id):
    for state in await states_of(client, user_id):
        if str(state.sku_id) == sku and (str(state.assigned_by_group) if state.assigned_by_group else None) == group_id:
            return state
    raise AssertionError(f"no state of {sku} from {group_id} on {user_id}")


async def processing_state(client, group_id):
    configuration = RequestConfiguration(
        query_parameters=GroupItemRequestBuilder.GroupItemRequestBuilderGetQueryParameters(
            select=["id", "licenseProcessingState"]
        )
    )
    group = await client.groups.by_group_id(group_id).get(request_configuration=configuration)
    return group.license_processing_state.state


async def wait_for_group(client, group_id):
    async def complete():
        return await processing_state(client, group_id) == "ProcessingComplete"

    await wait_until(complete, f"group {group_id} to finish processing")


async def consumed_units(client, sku):
    skus = await client.subscribed_skus.get()
    return next(item.consumed_units for item in skus.value if str(item.sku_id) == sku)


def test_subscribed_skus_have_graphs_shape():
    async def scenario(client):
        skus = await client.subscribed_skus.get()
        by_part_number = {sku.sku_part_number: sku for sku in skus.value}
        assert {"STANDARDPACK", "ENTERPRISEPACK", "EMS", "WORKPLACE_ANALYTICS"} <= set(by_part_number)
        e3 = by_part_number["ENTERPRISEPACK"]
        assert str(e3.sku_id) == E3
        assert e3.applies_to == "User"
        assert e3.capability_status == "Enabled"
        assert e3.prepaid_units.enabled >= 1
        assert e3.consumed_units >= 0
        assert any(str(plan.service_plan_id) == EXCHANGE_PLAN_2 for plan in e3.service_plans)
        assert all(plan.provisioning_status == "Success" for plan in e3.service_plans)
        one = await client.subscribed_skus.by_subscribed_sku_id(e3.id).get()
        assert one.sku_part_number == "ENTERPRISEPACK"

    run(scenario)


def test_users_are_created_read_updated_and_deleted():
    async def scenario(client):
        name = unique("adele")
        created = await create_user(client, name, usage_location="US")
        assert created.display_name == name
        assert created.usage_location == "US"
        by_name = await client.users.by_user_id(f"{name}@contoso.com").get()
        assert by_name.id == created.id

        await client.users.by_user_id(created.id).patch(User(usage_location="NL", display_name=f"{name} V."))
        updated = await client.users.by_user_id(created.id).get()
        assert updated.usage_location == "NL"
        assert updated.display_name == f"{name} V."

        configuration = RequestConfiguration(
            query_parameters=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
                select=["displayName", "licenseAssignmentStates"]
            )
        )
        selected = await client.users.by_user_id(created.id).get(request_configuration=configuration)
        assert selected.license_assignment_states == []
        assert selected.user_principal_name is None, "only the selected properties"

        with pytest.raises(ODataError) as duplicate:
            await create_user(client, name)
        assert duplicate.value.response_status_code == 400
        assert duplicate.value.error.code == "Request_BadRequest"

        await client.users.by_user_id(created.id).delete()
        with pytest.raises(ODataError) as missing:
            await client.users.by_user_id(created.id).get()
        assert missing.value.response_status_code == 404
        assert missing.value.error.code == "Request_ResourceNotFound"

    run(scenario)


def test_direct_assignment_is_checked_at_once_with_graphs_messages():
    async def scenario(client):
        user = await create_user(client, unique("direct"))
        answered = await assign_to_user(client, user.id, add=licenses(E1))
        assert [str(license.sku_id) for license in answered.assigned_licenses] == [E1]

        with pytest.raises(ODataError) as exclusive:
            await assign_to_user(client, user.id, add=licenses(E3))
        assert exclusive.value.response_status_code == 400
        assert exclusive.value.error.message.startswith("License assignment failed because service plans ")
        assert "are mutually exclusive." in exclusive.value.error.message

        with pytest.raises(ODataError) as nothing:
            await assign_to_user(client, user.id)
        assert nothing.value.error.message == (
            "No license changes provided. At least one license to add or remove must be specified."
        )

        nowhere = await create_user(client, unique("nowhere"), usage_location=None)
        with pytest.raises(ODataError) as location:
            await assign_to_user(client, nowhere.id, add=licenses(E3))
        assert location.value.error.message.startswith(
            "License assignment cannot be done for user with invalid usage location."
        )

        with pytest.raises(ODataError) as dependency:
            await assign_to_user(client, nowhere.id, add=licenses(WORKPLACE_ANALYTICS))
        assert dependency.value.response_status_code == 400

        # Replace E1 by E3 with Exchange disabled, then read the license details.
        await assign_to_user(client, user.id, remove=[E1])
        await assign_to_user(client, user.id, add=licenses(E3, disabled_plans=[UUID(EXCHANGE_PLAN_2)]))
        details = await client.users.by_user_id(user.id).license_details.get()
        assert [detail.sku_part_number for detail in details.value] == ["ENTERPRISEPACK"]
        exchange = next(plan for plan in details.value[0].service_plans if str(plan.service_plan_id) == EXCHANGE_PLAN_2)
        assert exchange.provisioning_status == "Disabled"
        reprocessed = await client.users.by_user_id(user.id).reprocess_license_assignment.post()
        assert reprocessed.id == user.id

    run(scenario)


def test_the_seeds_group_scenarios_end_to_end():
    async def scenario(client):
        # Not enough licenses: E3 gets exactly two free seats for this scenario.
        e3_before = await consumed_units(client, E3)
        ems_before = await consumed_units(client, EMS)
        admin_ok("PATCH", f"/licensd/v1/skus/{E3}", {"prepaidUnits": e3_before + 3})
        group = await create_group(client, unique("Contoso E3 + EMS"))
        accepted = await assign_to_group(client, group.id, add=licenses(E3, EMS))
        assert {str(license.sku_id) for license in accepted.assigned_licenses} == {E3, EMS}

        ana = await create_user(client, unique("ana"))
        ben = await create_user(client, unique("ben"))
        # Conflicting service plans: Dan holds E1 (Exchange Plan 1) directly.
        dan = await create_user(client, unique("dan"))
        await assign_to_user(client, dan.id, add=licenses(E1))
        # Usage location: Teams is unavailable in Cuba.
        eve = await create_user(client, unique("eve"), usage_location="CU")
        # Duplicate proxy address: Fay also uses Ben's address, and E3 has a mailbox.
        fay_name = unique("fay")
        fay = await create_user(
            client, fay_name, proxy_addresses=[f"SMTP:{fay_name}@contoso.com", f"smtp:{ben.user_principal_name}"]
        )
        cleo = await create_user(client, unique("cleo"))
        for user in [dan, eve, fay, ana, ben, cleo]:
            await add_member(client, group.id, user.id)
        await wait_for_group(client, group.id)

        dan_state = await state_of(client, dan.id, E3, group.id)
        assert (dan_state.state, dan_state.error) == ("Error", "MutuallyExclusiveViolation")
        eve_state = await state_of(client, eve.id, E3, group.id)
        assert (eve_state.state, eve_state.error) == ("Error", "ProhibitedInUsageLocationViolation")
        fay_state = await state_of(client, fay.id, E3, group.id)
        assert (fay_state.state, fay_state.error) == ("Error", "UniquenessViolation")
        ana_state = await state_of(client, ana.id, E3, group.id)
        assert (ana_state.state, ana_state.error) == ("Active", "None")
        # Fay shares Ben's address and neither had a mailbox yet: both are in error.
        ben_state = await state_of(client, ben.id, E3, group.id)
        assert ben_state.error == "UniquenessViolation"
        cleo_state = await state_of(client, cleo.id, E3, group.id)
        assert cleo_state.state == "Active"
        assert await consumed_units(client, E3) == e3_before + 2
        ems_state = await state_of(client, dan.id, EMS, group.id)
        assert ems_state.state == "Error", "a group's products are assigned all together or not at all"

        in_error = await client.groups.by_group_id(group.id).members_with_license_errors.get()
        assert {member.id for member in in_error.value} == {dan.id, eve.id, fay.id, ben.id}
        assert all(member.odata_type == "#microsoft.graph.user" for member in in_error.value)

        configuration = RequestConfiguration(
            query_parameters=GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
                filter="hasMembersWithLicenseErrors eq true", select=["id", "displayName"]
            )
        )
        needing_attention = await client.groups.get(request_configuration=configuration)
        assert group.id in {item.id for item in needing_attention.value}

        # A late member takes the last free seat.
        late = await create_user(client, unique("late"))
        await add_member(client, group.id, late.id)
        await wait_for_group(client, group.id)
        assert (await state_of(client, late.id, E3, group.id)).state == "Active"

        # Resolve: remove Dan's direct E1, move Eve, fix Fay's address, then reprocess them.
        await assign_to_user(client, dan.id, remove=[E1])
        await client.users.by_user_id(eve.id).patch(User(usage_location="NL"))
        await client.users.by_user_id(fay.id).patch(User(proxy_addresses=[f"SMTP:{fay_name}@contoso.com"]))
        for user in [dan, eve, fay, ben]:
            await client.users.by_user_id(user.id).reprocess_license_assignment.post()
        await wait_for_group(client, group.id)
        # Their causes are gone, but the seats are not there: not enough licenses.
        for user in [dan, eve, fay, ben]:
            state = await state_of(client, user.id, E3, group.id)
            assert (state.state, state.error) == ("Error", "CountViolation"), user.display_name
        assert await consumed_units(client, E3) == e3_before + 3

        # Buy seats (licensd's admin API) and reprocess the users still waiting.
        admin_ok("PATCH", f"/licensd/v1/skus/{E3}", {"prepaidUnits": e3_before + 10})
        for user in [dan, eve, fay, ben]:
            await client.users.by_user_id(user.id).reprocess_license_assignment.post()
        await wait_for_group(client, group.id)
        for user in [ana, ben, cleo, dan, eve, fay, late]:
            state = await state_of(client, user.id, E3, group.id)
            assert (state.state, state.error) == ("Active", "None"), user.display_name
        cleared = await client.groups.by_group_id(group.id).members_with_license_errors.get()
        assert cleared.value == []
        assert await consumed_units(client, E3) == e3_before + 7
        assert await consumed_units(client, EMS) == ems_before + 7

        # Removing a member takes the group's products away from that user.
        await client.groups.by_group_id(group.id).members.by_directory_object_id(late.id).ref.delete()

        async def late_lost_the_group():
            return all(str(state.assigned_by_group) != group.id for state in await states_of(client, late.id))

        await wait_until(late_lost_the_group, "the removed member's licenses to go")
        assert await consumed_units(client, E3) == e3_before + 6
        member_of = await client.users.by_user_id(ana.id).member_of.get()
        assert [item.id for item in member_of.value] == [group.id]
        assert member_of.value[0].odata_type == "#microsoft.graph.group"

    run(scenario)


def test_a_group_needs_the_prerequisite_of_its_add_on():
    async def scenario(client):
        group = await create_group(client, unique("Analysts"))
        with pytest.raises(ODataError) as refused:
            await assign_to_group(client, group.id, add=licenses(WORKPLACE_ANALYTICS))
        assert refused.value.response_status_code == 400
        assert refused.value.error.message == (
            "License operation failed. Make sure that the group has necessary services before adding or "
            "removing a dependent service. The service Microsoft Workplace Analytics requires Exchange "
            "Online (Plan 1) or Exchange Online (Plan 2) to be enabled as well."
        )
        accepted = await assign_to_group(client, group.id, add=licenses(E3, WORKPLACE_ANALYTICS))
        assert len(accepted.assigned_licenses) == 2

    run(scenario)


def test_paging_through_250_users_with_the_page_iterator():
    async def scenario(client):
        prefix = unique("page")
        created = set()
        for number in range(260):
            user = await client.users.post(
                User(
                    account_enabled=True,
                    display_name=f"{prefix} {number}",
                    user_principal_name=f"{prefix}-{number:03}@contoso.com",
                    mail_nickname=f"{prefix}{number}",
                )
            )
            created.add(user.id)

        configuration = RequestConfiguration(
            query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                filter=f"startswith(userPrincipalName,'{prefix}-')", select=["id", "userPrincipalName"], count=True
            )
        )
        configuration.headers.add("ConsistencyLevel", "eventual")
        first_page = await client.users.get(request_configuration=configuration)
        assert len(first_page.value) == 100, "pages of 100 by default"
        assert first_page.odata_count == 260
        assert first_page.odata_next_link.startswith(f"{BASE_URL}/v1.0/users?")

        seen = []

        def collect(user):
            seen.append(user.id)
            return True

        iterator = PageIterator(first_page, client.request_adapter)
        await iterator.iterate(collect)
        assert len(seen) == 260
        assert set(seen) == created

        # Every user, unfiltered, with the default page size.
        everyone = []
        iterator = PageIterator(await client.users.get(), client.request_adapter)
        await iterator.iterate(lambda user: everyone.append(user.id) or True)
        assert len(everyone) == len(set(everyone)) >= 260

    run(scenario)


def test_filters_sent_by_the_sdk():
    async def scenario(client):
        holder = await create_user(client, unique("holder"))
        await assign_to_user(client, holder.id, add=licenses(E1))
        configuration = RequestConfiguration(
            query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                filter=f"assignedLicenses/any(x:x/skuId eq {E1}) and id eq '{holder.id}'"
            )
        )
        found = await client.users.get(request_configuration=configuration)
        assert [user.id for user in found.value] == [holder.id]
        configuration = RequestConfiguration(
            query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                filter=f"proxyAddresses/any(p:p eq 'smtp:{holder.user_principal_name.upper()}')"
            )
        )
        found = await client.users.get(request_configuration=configuration)
        assert [user.id for user in found.value] == [holder.id]

        with pytest.raises(ODataError) as unsupported:
            await client.users.get(
                request_configuration=RequestConfiguration(
                    query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(orderby=["usageLocation"])
                )
            )
        assert unsupported.value.response_status_code == 400
        assert unsupported.value.error.code == "Request_UnsupportedQuery"

    run(scenario)


def advanced(query_parameters):
    """A request configuration for an advanced query (ConsistencyLevel: eventual)."""
    configuration = RequestConfiguration(query_parameters=query_parameters)
    configuration.headers.add("ConsistencyLevel", "eventual")
    return configuration


def test_orderby_search_expand_and_count_sent_by_the_sdk():
    from msgraph.generated.directory_objects.get_by_ids.get_by_ids_post_request_body import (
        GetByIdsPostRequestBody,
    )

    async def scenario(client):
        tag = uuid.uuid4().hex[:8]
        names = [f"zeta{tag}", f"alpha{tag}", f"mid{tag}"]
        users = [await create_user(client, name) for name in names]
        group = await create_group(client, unique("Query group"))
        for user in users:
            await add_member(client, group.id, user.id)
        await assign_to_user(client, users[0].id, add=licenses(E1))

        # $orderby with $filter is an advanced query: $count=true and ConsistencyLevel.
        ordered = await client.users.get(
            request_configuration=advanced(
                UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                    filter=f"startswith(displayName,'alpha{tag}') or startswith(displayName,'mid{tag}') "
                    f"or startswith(displayName,'zeta{tag}')",
                    orderby=["displayName desc"],
                    count=True,
                )
            )
        )
        assert [user.display_name for user in ordered.value] == sorted(names, reverse=True)
        assert ordered.odata_count == 3

        # Tokenized $search.
        found = await client.users.get(
            request_configuration=advanced(
                UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(search=f'"displayName:mid{tag}"')
            )
        )
        assert [user.id for user in found.value] == [users[2].id]

        # $expand=members on a group: the members arrive as users.
        expanded = await client.groups.by_group_id(group.id).get(
            request_configuration=RequestConfiguration(
                query_parameters=GroupItemRequestBuilder.GroupItemRequestBuilderGetQueryParameters(expand=["members"])
            )
        )
        assert sorted(member.id for member in expanded.members) == sorted(user.id for user in users)
        assert all(isinstance(member, User) for member in expanded.members)
        expanded_user = await client.users.by_user_id(users[0].id).get(
            request_configuration=RequestConfiguration(
                query_parameters=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(expand=["memberOf"])
            )
        )
        assert [item.id for item in expanded_user.member_of] == [group.id]

        # $count on navigation collections (plain text), transitive members and type casts.
        count_configuration = RequestConfiguration()
        count_configuration.headers.add("ConsistencyLevel", "eventual")
        members = client.groups.by_group_id(group.id)
        assert await members.members.count.get(request_configuration=count_configuration) == 3
        assert await members.transitive_members.count.get(request_configuration=count_configuration) == 3
        cast = await members.members.graph_user.get()
        assert sorted(user.id for user in cast.value) == sorted(user.id for user in users)
        memberships = await client.users.by_user_id(users[1].id).transitive_member_of.get()
        assert [item.id for item in memberships.value] == [group.id]

        # directoryObjects/getByIds.
        by_ids = await client.directory_objects.get_by_ids.post(
            GetByIdsPostRequestBody(ids=[users[0].id, group.id], types=["user", "group"])
        )
        assert [item.id for item in by_ids.value] == [users[0].id, group.id]

        # The "licensed users" query.
        licensed = await client.users.get(
            request_configuration=advanced(
                UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                    filter="assignedLicenses/$count ne 0", count=True, top=999, select=["id"]
                )
            )
        )
        assert users[0].id in [user.id for user in licensed.value]
        assert users[1].id not in [user.id for user in licensed.value]

    run(scenario)


def test_the_openapi_document_validates():
    from openapi_spec_validator import validate

    with urllib.request.urlopen(f"{BASE_URL}/openapi.json", timeout=30) as response:
        document = json.load(response)
    validate(document)
    assert "/v1.0/users/{id}/assignLicense" in document["paths"]
    assert "/licensd/v1/catalog/import" in document["paths"]
