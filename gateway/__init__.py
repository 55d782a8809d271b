"""loyalty-gateway: a GraphQL federated loyalty gateway over MongoDB."""
