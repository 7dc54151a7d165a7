"""The request pipeline: one handler per tus method, the body reader, appends, downloads, final uploads, and
the middleware around them."""
