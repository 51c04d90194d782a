package mail

// PlainAllowed exposes the TLS policy to the tests.
var PlainAllowed = plainAllowed
