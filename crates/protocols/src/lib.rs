//! The grammars of the protocols licensd speaks, with no HTTP in them: [`odata`] (Graph's query
//! options: `$filter`, `$select`, `$orderby`, `$search`, `$expand`, paging and `@odata.nextLink`)
//! and [`scim`] (SCIM 2.0 filters, attribute paths, PATCH operations, list queries and the
//! schemas). Each takes text or JSON and an entity's schema and returns a typed value or a typed
//! refusal carrying exactly what the response needs; the server's surfaces turn those refusals
//! into Graph and SCIM error responses (one `From` each) and evaluate the values against the
//! engine's entities through the traits defined here.

pub mod odata;
pub mod scim;
