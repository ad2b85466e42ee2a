"""The reference: a Flask-JWT-Extended service in cookie mode, as the seed's Flask service would run it, sharing
auth-api's secret and blacklist collection. The interop test (tests/auth/flask_interop.rs) starts it on a port of
its own and sends each side the other's cookies.

Environment: PORT, JWT_SECRET_KEY, DB_URI, DB_NAME, BLACKLIST_COLLECTION (default jwt_blacklist).
Routes: POST /login {"username"} (no password: the test's users are auth-api's), GET /protected,
POST /echo (a state-changing route: needs the CSRF header), POST /logout (revokes the access token).
"""

import datetime
import os
import uuid

from flask import Flask, jsonify, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
    get_jwt_identity,
    jwt_required,
    set_access_cookies,
    set_refresh_cookies,
    unset_jwt_cookies,
)
from pymongo import MongoClient

app = Flask(__name__)
app.config["JWT_SECRET_KEY"] = os.environ["JWT_SECRET_KEY"]
app.config["JWT_TOKEN_LOCATION"] = ["cookies"]
app.config["JWT_COOKIE_SECURE"] = False
app.config["JWT_COOKIE_CSRF_PROTECT"] = True
app.config["JWT_ACCESS_TOKEN_EXPIRES"] = datetime.timedelta(minutes=15)
jwt = JWTManager(app)

blacklist = MongoClient(os.environ["DB_URI"])[os.environ["DB_NAME"]][
    os.environ.get("BLACKLIST_COLLECTION", "jwt_blacklist")
]


@jwt.token_in_blocklist_loader
def revoked(_header, payload):
    return blacklist.find_one({"jti": payload["jti"]}) is not None


@app.post("/login")
def login():
    name = request.get_json()["username"]
    response = jsonify({"login": True})
    set_access_cookies(response, create_access_token(identity=name))
    set_refresh_cookies(response, create_refresh_token(identity=name))
    return response


@app.get("/protected")
@jwt_required()
def protected():
    return jsonify({"logged_in_as": get_jwt_identity()})


@app.post("/echo")
@jwt_required()
def echo():
    return jsonify({"logged_in_as": get_jwt_identity()})


@app.post("/logout")
@jwt_required()
def logout():
    claims = get_jwt()
    blacklist.insert_one(
        {
            "jti": claims["jti"],
            "type": claims["type"],
            "user": claims["sub"],
            "expires_at": datetime.datetime.fromtimestamp(claims["exp"], datetime.timezone.utc),
            "created_at": datetime.datetime.now(datetime.timezone.utc),
            "_by": "flask-" + str(uuid.uuid4()),
        }
    )
    response = jsonify({"msg": "Successfully logged out"})
    unset_jwt_cookies(response)
    return response


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]))
