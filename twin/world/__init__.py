"""What does not change in a run (the network, its costs) and the one mutable State."""
