"""设置 (settings): ``layout`` builds and wires the page, ``handlers`` holds what its events do."""
