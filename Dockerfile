FROM node:20-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin bin
COPY src src
COPY workers workers
COPY scheduler scheduler
COPY tsconfig.json ./
USER node
ENTRYPOINT []
# Nothing long-running by default (in particular not the local KMS test server): name the role,
# e.g. `docker run IMAGE node bin/rewrap.js worker`.
CMD ["node", "bin/rewrap.js", "--help"]
