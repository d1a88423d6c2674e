"""The auth service: users, passwords, sessions, 2FA, projects and roles, API tokens (gRPC).

Its packages import one way, each only from those below it (tests/authsvc/test_import_direction.py
fails on any cycle):

    __main__ → server → app (wiring), admin
    admin → publishing → tokens → projects → twofactor → accounts
    every area → ratelimit, mail, grpc_common, db, errors, settings (the bottom)

A lower area that needs something from a higher one gets it passed in at construction in
`app.py` (the projects area's "which projects require a second factor" for the two-factor
policy; the tokens area's revocation for project deletion; the publishing area's checks of the
tokens it mints, for the token verifier); `models.py` and `migrations/` only
collect every area's tables.
"""
