"""训练 (train): ``layout`` builds and wires the page, ``handlers`` holds what its events do."""
