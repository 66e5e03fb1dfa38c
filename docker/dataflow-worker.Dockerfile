# Custom Dataflow worker for the bsm Beam pipelines (RefSeq, Gene, single-modal, pack/mix).
# Build from the repository root:
#   docker build -f docker/dataflow-worker.Dockerfile -t REGION-docker.pkg.dev/PROJECT/bsm/dataflow-worker:0.1.0 .
# Run a pipeline with it:
#   bsm data refseq ... --runner DataflowRunner --sdk_container_image REGION-docker.pkg.dev/PROJECT/bsm/dataflow-worker:0.1.0
# The SDK version of the image must equal the apache-beam version the job is launched with.
FROM apache/beam_python3.11_sdk:2.77.0

WORKDIR /opt/bsm
COPY pyproject.toml setup.py README.md NOTICE ./
COPY bsm_data ./bsm_data
COPY bsm_model ./bsm_model
COPY pipelines ./pipelines
COPY schemas ./schemas
# Only the data extras: workers need no torch. setup.py compiles the GenBank fast path with the
# image's gcc; the import check fails the build if it did not (the Python path would be ~5x slower).
RUN pip install --no-cache-dir . && python -c "import bsm_data.build, pipelines.refseq, bsm_data._gbfast; from bsm_data.vocab import load_vocab; load_vocab()"

# The Beam SDK harness stays the entrypoint (inherited from the base image).
