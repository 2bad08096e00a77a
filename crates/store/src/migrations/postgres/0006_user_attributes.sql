-- Schema version 6: users' directory attributes (issue 17: department, jobTitle, companyName,
-- officeLocation, city, state, country, employeeId, employeeType, mail, userType,
-- extensionAttribute1-15), as one JSON object of attribute name to value ('' when the user has
-- none, the common case, so the column costs nothing for tenants that do not use them).

ALTER TABLE users ADD COLUMN attributes TEXT NOT NULL DEFAULT '';
