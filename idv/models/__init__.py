"""Plain nn.Modules (no Lightning): backbones, heads, and the networks they make."""
