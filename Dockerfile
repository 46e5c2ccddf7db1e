# One image with modelhaul and its extras, built from this checkout (no published release needed).
#
#   docker build -t registry.example/modelhaul:0.1.0 .
#
# It runs every KFP component with nothing installed at pod start (a cluster without egress runs it):
#
#   python -m modelhaul.components.compile --image registry.example/modelhaul:0.1.0 --out kfp
#
# and it is the base of the storage initializer image (Dockerfile.initializer adds its entrypoint).
# The same image runs the CLI: docker run --rm IMG modelhaul --help
#
# EXTRAS picks modelhaul's extras (add torch for TorchScript: several GB). EXTRA_PACKAGES are
# installed beside them: the full MLflow, which training code (the shipped example too) needs and
# the [mlflow] extra's mlflow-skinny leaves out. A small initializer-only base:
#   docker build --build-arg EXTRAS= --build-arg EXTRA_PACKAGES="onnx==1.23.2" -t modelhaul-slim:0.1.0 .
FROM python:3.11-slim

ARG EXTRAS="kfp,mlflow,train,convert,kube,sign"
ARG EXTRA_PACKAGES="mlflow==3.17.2"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml README.md LICENSE /src/
COPY modelhaul /src/modelhaul
COPY operators /src/operators
COPY components /src/components
COPY plugins /src/plugins
RUN pip install "/src${EXTRAS:+[$EXTRAS]}" ${EXTRA_PACKAGES} && rm -rf /src

# non-root. KFP's executor writes output artifacts under /gcs, /minio or /s3 (after the pipeline
# root's scheme), which a non-root user cannot create at the filesystem root: create them here.
# The initializer's models volume (/mnt/models) is an emptyDir the pod makes writable.
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin modelhaul \
    && mkdir -p /gcs /minio /s3 && chmod 1777 /gcs /minio /s3
USER 1000
ENV HOME=/home/modelhaul
WORKDIR /home/modelhaul

CMD ["modelhaul", "--help"]
