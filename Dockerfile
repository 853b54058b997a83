# The controller's image: a static, pure-Go noderoll on distroless, run as
# non-root. Build: docker build -t ghcr.io/noderoll/noderoll:0.1.0 .
# (No image is pushed from this repository's CI; the Helm chart names it.)
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Pure Go: kubectl's drain package brings Go's plugin package in, which
# makes a cgo build keep every symbol (README: 174 MiB against 55 MiB).
RUN CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/noderoll ./cmd/noderoll

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/noderoll /noderoll
USER 65532:65532
ENTRYPOINT ["/noderoll"]
CMD ["controller"]
