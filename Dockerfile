# The controller's image: the static, pure-Go noderoll-controller (the
# controller alone: no sandbox, AWS simulator, benchmark or Helm engine) on
# distroless, run as non-root. Build: docker build -t ghcr.io/noderoll/noderoll:0.1.0 .
# (No image is pushed from this repository's CI; the Helm chart names it.)
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Pure Go: kubectl's drain package brings Go's plugin package in, which
# makes a cgo build keep every symbol (README: 174 MiB against 55 MiB).
RUN CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/noderoll-controller ./cmd/noderoll-controller

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/noderoll-controller /noderoll-controller
USER 65532:65532
ENTRYPOINT ["/noderoll-controller"]
