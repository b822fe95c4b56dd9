"""occkit-bev: a BEV-plane occupancy baseline, registered with occkit through an entry point."""
