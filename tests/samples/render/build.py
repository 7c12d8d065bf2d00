"""render.yaml's buildCommand runs this after the dependencies are installed."""
import os

with open("built.txt", "w") as f:
    f.write(f"built with RENDER={os.environ.get('RENDER')} MODE={os.environ.get('MODE')}")
