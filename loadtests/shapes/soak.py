"""The soak load shape (see loadtests/README.md).

    locust -f loadtests/locustfile.py,loadtests/shapes/soak.py --headless ...
"""

from sipharness.load.shapes import SoakShape

__all__ = ["SoakShape"]
