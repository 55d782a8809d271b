"""The only layer that names a MongoDB collection: the client, repositories, the embedded mongod."""
