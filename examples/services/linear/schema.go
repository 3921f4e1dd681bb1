package linear

// The fake's schema: a faithful subset of Linear's public GraphQL schema
// (https://studio.apollographql.com/public/Linear-API), enough for issues,
// teams, workflow states and users. Types are written in GraphQL syntax.

type fieldDef struct {
	typ  string
	args map[string]string // argument name -> type
}

func f(typ string) fieldDef { return fieldDef{typ: typ} }

var scalarTypes = map[string]bool{"String": true, "Int": true, "Float": true, "Boolean": true, "ID": true, "DateTime": true}

var enumTypes = map[string][]string{
	"PaginationOrderBy": {"createdAt", "updatedAt"},
}

var objectTypes = map[string]map[string]fieldDef{
	"Query": {
		"viewer": f("User!"),
		"teams":  {typ: "TeamConnection!", args: map[string]string{"first": "Int", "after": "String", "filter": "TeamFilter", "includeArchived": "Boolean"}},
		"team":   {typ: "Team!", args: map[string]string{"id": "String!"}},
		"issues": {typ: "IssueConnection!", args: map[string]string{"first": "Int", "after": "String", "filter": "IssueFilter", "orderBy": "PaginationOrderBy", "includeArchived": "Boolean"}},
		"issue":  {typ: "Issue!", args: map[string]string{"id": "String!"}},
	},
	"Mutation": {
		"issueCreate": {typ: "IssuePayload!", args: map[string]string{"input": "IssueCreateInput!"}},
	},
	"User": {
		"id": f("ID!"), "name": f("String!"), "displayName": f("String!"), "email": f("String!"), "active": f("Boolean!"),
	},
	"Team": {
		"id": f("ID!"), "key": f("String!"), "name": f("String!"), "description": f("String"),
	},
	"WorkflowState": {
		"id": f("ID!"), "name": f("String!"), "type": f("String!"), "color": f("String!"), "position": f("Float!"),
	},
	"Issue": {
		"id": f("ID!"), "identifier": f("String!"), "number": f("Float!"), "title": f("String!"), "description": f("String"),
		"priority": f("Float!"), "priorityLabel": f("String!"), "url": f("String!"), "branchName": f("String!"),
		"createdAt": f("DateTime!"), "updatedAt": f("DateTime!"), "completedAt": f("DateTime"),
		"team": f("Team!"), "state": f("WorkflowState!"), "assignee": f("User"), "creator": f("User"),
	},
	"IssueConnection": {"nodes": f("[Issue!]!"), "pageInfo": f("PageInfo!")},
	"TeamConnection":  {"nodes": f("[Team!]!"), "pageInfo": f("PageInfo!")},
	"PageInfo": {
		"hasNextPage": f("Boolean!"), "hasPreviousPage": f("Boolean!"), "startCursor": f("String"), "endCursor": f("String"),
	},
	"IssuePayload": {"success": f("Boolean!"), "issue": f("Issue"), "lastSyncId": f("Float!")},
}

var inputTypes = map[string]map[string]string{
	"IssueCreateInput": {
		"id": "String", "teamId": "String!", "title": "String", "description": "String", "priority": "Int",
		"assigneeId": "String", "stateId": "String", "labelIds": "[String!]", "parentId": "String", "estimate": "Int",
	},
	"IssueFilter": {
		"id": "IDComparator", "title": "StringComparator", "priority": "NullableNumberComparator",
		"team": "TeamFilter", "state": "WorkflowStateFilter", "assignee": "NullableUserFilter",
		"and": "[IssueFilter!]", "or": "[IssueFilter!]",
	},
	"TeamFilter":          {"id": "IDComparator", "key": "StringComparator", "name": "StringComparator", "and": "[TeamFilter!]", "or": "[TeamFilter!]"},
	"WorkflowStateFilter": {"id": "IDComparator", "name": "StringComparator", "type": "StringComparator"},
	"NullableUserFilter": {
		"id": "IDComparator", "name": "StringComparator", "displayName": "StringComparator", "email": "StringComparator",
		"isMe": "BooleanComparator", "null": "Boolean",
	},
	"StringComparator": {
		"eq": "String", "neq": "String", "in": "[String!]", "nin": "[String!]",
		"eqIgnoreCase": "String", "neqIgnoreCase": "String", "contains": "String", "containsIgnoreCase": "String",
		"startsWith": "String", "endsWith": "String",
	},
	"IDComparator": {"eq": "ID", "neq": "ID", "in": "[ID!]", "nin": "[ID!]"},
	"NullableNumberComparator": {
		"eq": "Float", "neq": "Float", "lt": "Float", "lte": "Float", "gt": "Float", "gte": "Float",
		"in": "[Float!]", "nin": "[Float!]", "null": "Boolean",
	},
	"BooleanComparator": {"eq": "Boolean", "neq": "Boolean"},
}
