"""One page per step of the journey, in order."""
