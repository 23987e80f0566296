"""The identity graph's torch-free core: a snapshot's bipartite account-attribute structure,
the node features every consumer computes the same way (training, evaluation, the rules
baseline, serving) and the k-hop subgraph around accounts. numpy only, so a rings bundle
scores a new account against its stored graph without torch or PyG."""
