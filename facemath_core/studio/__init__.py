"""facemath studio: the library's projection, arithmetic, sliders, interpolation and completion behind a local web
page (`facemath studio`). `app` holds the HTTP routes, `sessions` each visitor's state, `jobs` the projection
worker threads, `engine` the calls into the library; `static/` the page itself (no CDN, no build step)."""
