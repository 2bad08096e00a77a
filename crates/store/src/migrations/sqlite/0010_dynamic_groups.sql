-- Schema version 7: dynamic membership groups (issue 17). A group with a membership rule is
-- dynamic: `membership_rule` is the rule as given (NULL for a group with assigned members) and
-- `membership_rule_state` Graph's membershipRuleProcessingState ('On' or 'Paused'). Its
-- memberships are stored in `memberships` like any other.

ALTER TABLE groups ADD COLUMN membership_rule TEXT;
ALTER TABLE groups ADD COLUMN membership_rule_state TEXT NOT NULL DEFAULT 'On';
