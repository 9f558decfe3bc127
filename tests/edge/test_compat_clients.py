"""The DeepStack / CodeProject.AI and CompreFace APIs of `edge serve`, driven by their real
clients from PyPI (deepstack-python, codeproject-ai-api, compreface-sdk) over real HTTP.

One server (dlib's face ResNet, a fresh gallery) for the module; each test enrols from
one LFW photo, recognises a *different* photo of that person, checks that a stranger
comes back unknown, then erases what it enrolled.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_serve import TOKEN, Server, person_photos, start_server

deepstack = pytest.importorskip("deepstack.core", reason="needs deepstack-python (dev group)")
codeprojectai = pytest.importorskip("codeprojectai.core", reason="needs codeproject-ai-api (dev)")
compreface = pytest.importorskip("compreface", reason="needs compreface-sdk (dev group)")


@pytest.fixture(scope="module")
def server(tmp_path_factory, dlib_bundle, yunet_path) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("compat")  # (the autouse YuNet fixture is per test)
    s = start_server(folder, dlib_bundle.path, "--detector", str(yunet_path))
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
