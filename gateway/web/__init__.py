"""The HTTP face: the ASGI app, the GraphQL view, authentication of requests and the server."""
