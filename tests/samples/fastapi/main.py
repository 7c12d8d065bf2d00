"""A FastAPI app with no Procfile and no server in its requirements."""
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def index():
    return {"hello": "from fastapi"}
