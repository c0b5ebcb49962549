"""goomerang conformance: the Autobahn|Testsuite of goomerang, for any peer.

``goomerang conformance server URL`` (or ``-- COMMAND``) runs numbered
cases against a server that follows the server profile; ``goomerang
conformance client -- COMMAND`` runs a test server and checks a client
program that follows the client profile. Each case ends OK, FAILED,
INFORMATIONAL (allowed by the protocol, worth knowing: what the Go v0.3.0
peer does without the protocol requiring it) or NOT APPLICABLE; JSON and HTML
reports are written on request. The profiles are documented in
``docs/conformance/README.md``.
"""
