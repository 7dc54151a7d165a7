"""Bearer tokens (issue 21): who a request acts for, from a JWT in its Authorization header.

`tokens` checks a token and makes its principal, `keys` holds the keys tokens are checked with (a secret, a PEM
public key), `jwks` fetches them from an issuer's JWKS URL and keeps them, `setup` builds all of it from the
settings. PyJWT (with `cryptography`) is an extra, `tusserver[auth]`, imported only when a token key is set.
"""
