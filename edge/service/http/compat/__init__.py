"""The face APIs home-automation tools already speak, answered by ``edge serve``.

``deepstack`` (DeepStack / CodeProject.AI) and ``compreface`` are routers on the same app
and engine as facelens' own API; ``scores`` puts facelens' cosine on their [0, 1] scale;
``dialect`` holds what both need (auth their way, forms, errors in their shape);
``frigate`` names the people of Frigate's person events (``edge serve --frigate``).
"""
