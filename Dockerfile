# One image for every service and process type: `python -m <service> api|worker|relay|migrate`.

FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /venv
COPY constraints.txt ./
COPY libs/common libs/common
COPY services services
RUN /venv/bin/pip install --no-cache-dir -c constraints.txt \
        ./libs/common ./services/identity ./services/catalog ./services/enrollment \
        ./services/automation ./services/reporting

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 lms && mkdir -p /var/lib/lms && chown lms /var/lib/lms
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LMS_VAR_DIR=/var/lib/lms \
    LMS_METRICS_ADDR=0.0.0.0
USER lms
WORKDIR /home/lms
ENTRYPOINT ["python", "-m"]
