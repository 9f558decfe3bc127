"""The DeepStack / CodeProject.AI and CompreFace APIs of `edge serve`, driven by their real
clients from PyPI (deepstack-python, codeproject-ai-api, compreface-sdk) over real HTTP.

One server (dlib's face ResNet, a fresh gallery) for the module; each test enrols from
one LFW photo, recognises a *different* photo of that person, checks that a stranger
comes back unknown, then erases what it enrolled.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_serve import TOKEN, Server, person_photos, start_server, upload

deepstack = pytest.importorskip("deepstack.core", reason="needs deepstack-python (dev group)")
codeprojectai = pytest.importorskip("codeprojectai.core", reason="needs codeproject-ai-api (dev)")
compreface = pytest.importorskip("compreface", reason="needs compreface-sdk (dev group)")


@pytest.fixture(scope="module")
def server(tmp_path_factory, dlib_bundle, yunet_path) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("compat")  # (the autouse YuNet fixture is per test)
    s = start_server(folder, dlib_bundle.path, "--detector", str(yunet_path), "--docs")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def photos(lfw_dir: Path) -> dict[str, list[Path]]:
    return {n: person_photos(lfw_dir, n) for n in ("Tony_Blair", "Colin_Powell", "Laura_Bush")}


@pytest.fixture(scope="module")
def cat(nonface_dir: Path) -> bytes:
    return next(nonface_dir.rglob("*.jpg")).read_bytes()


def port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def test_deepstack_python_registers_recognises_lists_and_refuses_a_wrong_key(
    server: Server, photos, cat
):
    face = deepstack.DeepstackFace(ip="127.0.0.1", port=port(server), api_key=TOKEN, timeout=60)
    tony, colin = photos["Tony_Blair"], photos["Colin_Powell"]
    assert face.register("Tony Blair", tony[0].read_bytes()) == "face added"
    (seen,) = face.recognize(tony[3].read_bytes())  # another photo of him
    assert seen["userid"] == "Tony Blair" and seen["confidence"] >= 0.70, seen
    assert 0 <= seen["x_min"] < seen["x_max"] and 0 <= seen["y_min"] < seen["y_max"]
    percent = round(seen["confidence"] * 100, 1)  # what Home Assistant's deepstack_face shows
    assert deepstack.get_recognized_faces([seen]) == {"Tony Blair": percent}
    (stranger,) = face.recognize(colin[0].read_bytes())
    assert (stranger["userid"], stranger["confidence"]) == ("unknown", 0.0)
    assert face.recognize(cat) == []  # no face: success, no predictions
    (found,) = face.detect(colin[0].read_bytes())
    assert found["confidence"] > 0.5 and found["x_max"] > found["x_min"]
    assert face.get_registered_faces() == ["Tony Blair"]
    with pytest.raises(deepstack.DeepstackException, match="status code: 400"):
        face.register("Cat", cat)
    wrong = deepstack.DeepstackFace(ip="127.0.0.1", port=port(server), api_key="wrong")
    with pytest.raises(deepstack.DeepstackException, match="status code: 401"):
        wrong.recognize(tony[3].read_bytes())
    with server.client() as http:  # the client has no delete: its wire format, by hand
        r = http.post("/v1/vision/face/delete", data={"userid": "Tony Blair", "api_key": TOKEN})
        assert r.json() == {"success": True}, r.text
        r = http.post("/v1/vision/face/delete", data={"userid": "Tony Blair", "api_key": TOKEN})
        assert r.status_code == 404 and r.json()["success"] is False, r.text
    assert face.get_registered_faces() == []
    (erased,) = face.recognize(tony[3].read_bytes())
    assert erased["userid"] == "unknown"


def test_register_adds_photos_and_match_compares_two(server: Server, photos):
    laura, colin = photos["Laura_Bush"], photos["Colin_Powell"]
    with server.client(token=None) as http:
        key = {"api_key": TOKEN}

        def post(path: str, files: dict, **data: str):
            return http.post(f"/v1/vision/face/{path}", files=files, data={**key, **data})

        two = {"image1": laura[0].read_bytes(), "image2": laura[1].read_bytes()}
        assert post("register", two, userid="Laura Bush").json()["success"] is True
        r = post("register", {"image": laura[2].read_bytes()}, userid="Laura Bush")
        assert r.json() == {"success": True, "message": "face added"}
        # DeepStack would have replaced the first two photos; facelens keeps all three
        assert http.get("/v1/people/Laura Bush", headers={"Authorization": f"Bearer {TOKEN}"}
                        ).json()["embeddings"] == 3  # fmt: skip
        same = post("match", {"image1": laura[3].read_bytes(), "image2": laura[4].read_bytes()})
        other = post("match", {"image1": laura[3].read_bytes(), "image2": colin[0].read_bytes()})
        assert same.json()["similarity"] >= 0.70 > 0.40 > other.json()["similarity"], (same, other)
        assert post("delete", {}, userid="Laura Bush").json() == {"success": True}


def test_codeproject_ai_api_carries_the_token_as_the_urls_password(server: Server, photos, cat):
    # codeproject-ai-api sends no key at all; requests turns http://user:TOKEN@host into
    # HTTP Basic auth, which facelens takes (CodeProject.AI itself has no auth).
    face = codeprojectai.CodeProjectAIFace(
        ip=f"facelens:{TOKEN}@127.0.0.1", port=port(server), timeout=60
    )
    tony, colin = photos["Tony_Blair"], photos["Colin_Powell"]
    assert face.register("Tony Blair", tony[1].read_bytes()) == "face added"
    (seen,) = face.recognize(tony[4].read_bytes())
    assert seen["userid"] == "Tony Blair" and seen["confidence"] >= 0.70, seen
    assert [p["userid"] for p in face.recognize(colin[1].read_bytes())] == ["unknown"]
    assert face.recognize(cat) == []
    assert face.get_registered_faces() == ["Tony Blair"]
    anonymous = codeprojectai.CodeProjectAIFace(ip="127.0.0.1", port=port(server))
    with pytest.raises(codeprojectai.CodeProjectAIException, match="401"):
        anonymous.recognize(tony[4].read_bytes())
    with server.client() as http:
        assert http.post("/v1/vision/face/delete", data={"userid": "Tony Blair"}).json() == {
            "success": True
        }


def test_compreface_sdk_adds_recognises_verifies_lists_and_deletes(server: Server, photos, cat):
    cf = compreface.CompreFace("http://127.0.0.1", str(port(server)))
    recognition = cf.init_face_recognition(TOKEN)
    faces, subjects = recognition.get_face_collection(), recognition.get_subjects()
    tony, colin = photos["Tony_Blair"], photos["Colin_Powell"]
    added = faces.add(image_path=str(tony[0]), subject="Tony Blair")
    assert added["subject"] == "Tony Blair" and len(added["image_id"]) == 36, added
    (seen,) = recognition.recognize(image_path=str(tony[3]))["result"]
    assert [s["subject"] for s in seen["subjects"]] == ["Tony Blair"], seen
    assert seen["subjects"][0]["similarity"] >= 0.70
    assert set(seen["box"]) == {"probability", "x_min", "y_min", "x_max", "y_max"}
    (stranger,) = recognition.recognize(image_path=str(colin[0]))["result"]
    assert stranger["subjects"] == []  # facelens names no one: no subject at all
    assert recognition.recognize(image_path=cat) == {
        "message": "No face is found in the given image",
        "code": 28,
    }
    listed = faces.list()
    assert listed["faces"] == [{"image_id": added["image_id"], "subject": "Tony Blair"}]
    assert listed["total_elements"] == 1 and listed["page_size"] == 20
    assert subjects.list() == {"subjects": ["Tony Blair"]}
    verify = cf.init_face_verification(TOKEN)
    (pair,) = verify.verify(str(tony[1]), str(tony[2]))["result"]
    assert pair["face_matches"][0]["similarity"] >= 0.70, pair
    (pair,) = verify.verify(str(tony[1]), str(colin[2]))["result"]
    assert pair["face_matches"][0]["similarity"] < 0.40, pair
    wrong = compreface.CompreFace("http://127.0.0.1", str(port(server))).init_face_recognition(
        "wrong"
    )
    assert wrong.recognize(image_path=str(tony[3]))["code"] == 401
    assert faces.delete_all("Tony Blair") == {"deleted": 1}
    assert subjects.list() == {"subjects": []}
    (erased,) = recognition.recognize(image_path=str(tony[3]))["result"]
    assert erased["subjects"] == []


def double_take(confidence_pct: float, match: float = 60.0, unknown: float = 40.0) -> str:
    """Double Take's verdict on a face (its normalize(): name at UNKNOWN, match at MATCH)."""
    if confidence_pct < unknown:
        return "unknown"
    return "match" if confidence_pct >= match else "named, no match"


def test_double_takes_calls_replayed(server: Server, photos, cat):
    """Double Take's requests as its detectors send them (api/src/util/detectors/
    compreface.js and deepstack.js): train, recognise, remove; and its reading of them."""
    tony, colin = photos["Tony_Blair"], photos["Colin_Powell"]
    with server.client(token=None) as http:
        key = {"x-api-key": TOKEN}
        faces = "/api/v1/recognition/faces"
        r = http.post(faces, params={"subject": "tony"}, headers=key, files=upload(tony[0], "file"))
        assert r.status_code == 200 and r.json()["subject"] == "tony", r.text
        recognize = "/api/v1/recognition/recognize"
        probe = {"det_prob_threshold": 0.8}
        r = http.post(recognize, params=probe, headers=key, files=upload(tony[3], "file"))
        (face,) = r.json()["result"]
        for match in (60, 65, 70):  # any match threshold up to 70 % is exactly facelens' decision
            assert double_take(face["subjects"][0]["similarity"] * 100, match) == "match"
        r = http.post(recognize, params=probe, headers=key, files=upload(colin[0], "file"))
        assert r.json()["result"][0]["subjects"] == []  # Double Take: unknown, confidence 0
        r = http.post(recognize, params=probe, headers=key, files={"file": ("cat.jpg", cat)})
        assert (r.status_code, r.json()) == (400, {"message": "No face is found in the given image",
                                                   "code": 28})  # fmt: skip
        b64 = {"file": base64.b64encode(tony[4].read_bytes()).decode()}  # CompreFace's JSON form
        (face,) = http.post(recognize, headers=key, json=b64).json()["result"]
        assert face["subjects"][0]["subject"] == "tony"
        assert http.delete(faces, params={"subject": "tony"}, headers=key).json() == {"deleted": 1}

        form = {"api_key": TOKEN}
        deepstack_face = "/v1/vision/face"
        r = http.post(f"{deepstack_face}/register", data={**form, "userid": "tony"},
                      files=upload(tony[1]))  # fmt: skip
        assert r.json() == {"success": True, "message": "face added"}
        r = http.post(f"{deepstack_face}/recognize", data=form, files=upload(tony[5]))
        (face,) = r.json()["predictions"]
        assert face["userid"] == "tony" and double_take(face["confidence"] * 100) == "match"
        r = http.post(f"{deepstack_face}/recognize", data=form, files=upload(colin[0]))
        assert [(p["userid"], p["confidence"]) for p in r.json()["predictions"]] == [("unknown", 0)]
        r = http.post(f"{deepstack_face}/delete", data={**form, "userid": "tony"})
        assert r.json() == {"success": True}
        r = http.post(
            f"{deepstack_face}/recognize", data={"api_key": "wrong"}, files=upload(tony[5])
        )
        assert r.status_code == 401 and r.json()["success"] is False and r.json()["code"] == 401


def test_the_openapi_schema_lists_every_compatible_route(server: Server):
    with server.client() as http:  # --docs serves it, behind the token
        paths = http.get("/openapi.json").json()["paths"]
    deepstack_paths = {f"/v1/vision/face{p}" for p in ("", "/register", "/recognize", "/list",
                                                       "/delete", "/match")}  # fmt: skip
    compreface_paths = {
        "/api/v1/recognition/recognize",
        "/api/v1/recognition/faces",
        "/api/v1/recognition/faces/{image_id}",
        "/api/v1/recognition/subjects",
        "/api/v1/recognition/subjects/{subject}",
        "/api/v1/verification/verify",
    }
    assert deepstack_paths | compreface_paths <= paths.keys(), sorted(paths)
    assert paths["/v1/vision/face/register"]["post"]["tags"] == ["DeepStack / CodeProject.AI"]
