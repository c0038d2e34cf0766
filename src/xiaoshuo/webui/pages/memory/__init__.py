"""记忆 (memory): ``layout`` builds and wires the page, ``handlers`` holds what its events do."""
