"""随手写 (scratch): ``layout`` builds and wires the page, ``handlers`` holds what its events do."""
