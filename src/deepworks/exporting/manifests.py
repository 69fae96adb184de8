"""What a package says to a container builder and a cluster (exporting/package.py): its Dockerfile, its Kubernetes
manifests (a Deployment and a Service), its KServe InferenceService, and its README. The manifests are made as
data and written as YAML; tests validate them against Kubernetes' schemas and KServe's API models.
"""

from __future__ import annotations

import yaml

PORT = 8080  # KServe's port for a custom predictor's container, and the package's default
USER_ID = 10001
READY, LIVE = "/v2/health/ready", "/v2/health/live"
TMP = [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]  # the one place the read-only container writes
CPUS = 2  # the container's CPU limit, and ONNX Runtime's threads (one a core it may use)


def image_of(manifest: dict) -> str:
    """The image name the README builds and the manifests run: the resource name, tagged with the graph's sha256
    (a new model is a new tag, and a cluster never runs an old image under a new model's name)."""
    graph = next(sha for name, sha in sorted(manifest["files"].items()) if name.endswith(".onnx"))
    return f"{manifest['resource_name']}:{graph[:12]}"


def dockerfile(manifest: dict) -> str:
    return f"""# A slim Python image serving {manifest['name']} without torch (deepworks package).
# Build: docker build -t {image_of(manifest)} .
# Run:   export DEEPWORKS_TOKEN=$(openssl rand -hex 16)   (keep it: clients send it)
#        docker run --rm -p {PORT}:{PORT} -e DEEPWORKS_TOKEN {image_of(manifest)}
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY package.json README.md ./
COPY model/ model/
COPY deepworks_runtime/ deepworks_runtime/
RUN useradd --no-create-home --uid {USER_ID} deepworks
USER {USER_ID}
EXPOSE {PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \\
  CMD ["python", "-c", "import sys, urllib.request as u; \\
sys.exit(u.urlopen('http://127.0.0.1:{PORT}{READY}', timeout=2).status != 200)"]
# Other machines reach it, so it needs a token: pass DEEPWORKS_TOKEN (at least 8 characters) when it starts.
ENTRYPOINT ["python", "-m", "deepworks_runtime", "/app", "--host", "0.0.0.0", "--port", "{PORT}"]
"""


def container(manifest: dict, name: str, read_only: bool = True) -> dict:
    """The container both the Deployment and the InferenceService run: the image, ONNX Runtime's threads as many as
    its CPU limit, the token from a Secret, the probes on the V2 health routes, a non-root user with no privileges
    and the runtime's default seccomp profile, and (`read_only`) a read-only root file system with /tmp its one
    writable place (uploads over 1 MB spool there)."""
    secret = f"{manifest['resource_name']}-token"

    def probe(path: str, delay: int) -> dict:
        return {"httpGet": {"path": path, "port": PORT}, "initialDelaySeconds": delay, "periodSeconds": 10,
                "timeoutSeconds": 3}

    spec = {"name": name, "image": image_of(manifest), "args": ["--threads", str(CPUS)],
            "ports": [{"containerPort": PORT, "protocol": "TCP"}],
            "env": [{"name": "DEEPWORKS_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}}}],
            "readinessProbe": probe(READY, 2), "livenessProbe": probe(LIVE, 10),
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                          "limits": {"cpu": str(CPUS), "memory": "2Gi"}},
            "securityContext": {"runAsNonRoot": True, "runAsUser": USER_ID, "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": read_only, "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"}}}
    if read_only:
        spec["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    return spec


def kubernetes_manifests(manifest: dict) -> dict[str, str]:
    """{file name: YAML}: k8s/deployment.yaml, k8s/service.yaml and kserve/inferenceservice.yaml."""
    name = manifest["resource_name"]
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "deepworks"}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
                  "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": labels},
                                        "spec": {"containers": [container(manifest, name)], "volumes": TMP}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
               "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": PORT,
                                                       "protocol": "TCP"}]}}
    inference = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                 "metadata": {"name": name, "labels": labels},
                 "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 3,
                                        # (Knative, under KServe's default mode, takes no emptyDir
                                        # unless a feature flag allows it: this container writes to its own /tmp)
                                        "containers": [container(manifest, "kserve-container", read_only=False)]}}}
    return {"k8s/deployment.yaml": as_yaml(deployment), "k8s/service.yaml": as_yaml(service),
            "kserve/inferenceservice.yaml": as_yaml(inference)}


class PlainDumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:  # the same volume list twice is written out twice, not as &id001
        return True


def as_yaml(resource: dict) -> str:
    return yaml.dump(resource, Dumper=PlainDumper, sort_keys=False)


def readme(manifest: dict) -> str:
    """How to start the package: with Python, with Docker, on Kubernetes and on KServe, and how to call it."""
    name, image, task = manifest["name"], image_of(manifest), manifest["task"]
    secret = f"{manifest['resource_name']}-token"
    return f"""# {name}: a deepworks {task} model that serves without torch

Made by deepworks {manifest['deepworks_version']} on {manifest['made']} (`deepworks package`). It answers the routes
of `deepworks serve`: `GET /v1/models`, `POST /v1/models/{name}/predict` (image uploads, base64 or arrays of
pixels), the Open Inference Protocol V2 (`/v2/models/{name}/infer`, `/v2/health/ready`), and `/metrics`.

- `model/`: the ONNX graph{'s (float and int8)' if manifest['runtime'] == 'int8' else ''} and its card (`model.json`:
  classes, inputs, outputs, preprocessing, test metrics). `package.json` records each file's sha256; the runtime
  refuses a file that differs.
- `deepworks_runtime/`: the server (deepworks' own serving code, needing only the packages of `requirements.txt`).

## With Python (3.9 or newer)

```bash
python -m venv venv && venv/bin/pip install -r requirements.txt
venv/bin/python -m deepworks_runtime            # http://127.0.0.1:8080, this machine only, no token needed
export DEEPWORKS_TOKEN=$(openssl rand -hex 16)  # reachable from other machines: a token, kept for the clients
venv/bin/python -m deepworks_runtime --host 0.0.0.0
```

`python -m deepworks_runtime --help` lists the limits (body size, items, time, batching, connections).

## With Docker

```bash
docker build -t {image} .
export DEEPWORKS_TOKEN=$(openssl rand -hex 16)
docker run --rm -p 8080:8080 -e DEEPWORKS_TOKEN {image}
```

The image runs as a non-root user and reports its health from `/v2/health/ready`.

## On Kubernetes, or KServe

Push the image where your cluster pulls from (and set that name in the manifests), then, with the token exported:

```bash
kubectl create secret generic {secret} --from-literal=token=$DEEPWORKS_TOKEN
kubectl apply -f k8s/                        # a Deployment and a Service (port 80)
kubectl apply -f kserve/inferenceservice.yaml   # or: KServe, speaking V2 at /v2/models/{name}/infer
```

## Calling it

```bash
curl -H "Authorization: Bearer $DEEPWORKS_TOKEN" -F file=@photo.jpg http://127.0.0.1:8080/v1/models/{name}/predict
```
"""
