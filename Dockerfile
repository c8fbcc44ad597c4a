# syntax=docker/dockerfile:1
# Portcullis: a SPIFFE mTLS sidecar that authorizes every privileged request with JIT grants.
#   docker build -t portcullis:0.1.0 .
#   docker run --rm -v $PWD/etc:/etc/portcullis:ro -p 8443:8443 portcullis:0.1.0
# Pin the base by digest in production (node:24-slim@sha256:...).

# --- build: compile TypeScript to dist/ (and copy src/pdp/proto) -------------------------------
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime: production dependencies and the compiled code only ------------------------------
FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev also skips the pinned `node` devDependency: the image's own Node 24 runs Portcullis.
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
# Files stay owned by root (read-only for the process). The `node` user (uid/gid 1000) of the
# official image, given numerically so Kubernetes' runAsNonRoot can verify it is not root.
USER 1000:1000
# 8443: the mTLS listener; 9901: the admin listener (/metrics, /healthz, /readyz, /admin/*).
EXPOSE 8443 9901
# No HEALTHCHECK: orchestrators probe GET /healthz and GET /readyz on the admin port.
ENTRYPOINT ["node", "bin/portcullis.js"]
CMD ["run", "--config", "/etc/portcullis/portcullis.yaml"]
