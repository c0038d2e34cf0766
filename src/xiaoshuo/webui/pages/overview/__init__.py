"""总览 (the book at a glance): ``layout`` builds and wires the page; ``handlers``: what events do."""
