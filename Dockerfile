# syntax=docker/dockerfile:1
# A static, non-root image of botbridge:
#   docker build -t botbridge --build-arg VERSION=$(git describe --always) .
#   docker run -v $PWD/botbridge.yaml:/etc/botbridge/botbridge.yaml:ro -v botbridge-data:/data \
#     -e BOTPRESS_ENCRYPTION_KEY -e SLACK_BOT_TOKEN -e SLACK_APP_TOKEN botbridge
# In the configuration, put the store on the volume: store.path: /data/botbridge.db

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -tags goolm -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/botbridge ./cmd/botbridge \
 && /out/botbridge version \
 && mkdir -p /out/data

# distroless/static: CA certificates and /etc/passwd with the nonroot user
# (65532), no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/botbridge /usr/local/bin/botbridge
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
# http.addr (e.g. 0.0.0.0:8080): file links, the Slack Events API, behind your proxy.
# http.admin_addr (0.0.0.0:9091 for probes from outside the container): /healthz,
# /readyz, /metrics; keep it off public networks.
EXPOSE 8080 9091
ENTRYPOINT ["/usr/local/bin/botbridge"]
CMD ["run", "-config", "/etc/botbridge/botbridge.yaml"]
