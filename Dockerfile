# Stockroom's app image: `node bin/stockroom.js start` (every role) against the
# PostgreSQL and Redis named by DATABASE_URL and REDIS_URL (docker-compose.yml
# sets both). With both set Stockroom starts no server of its own, so the image
# carries neither the embedded PostgreSQL binaries nor the development tools.
FROM node:24-bookworm-slim

WORKDIR /app
ENV NODE_ENV=production

# --omit=dev       Node 24 is this image's own; the `node` devDependency only
#                  serves machines whose Node is older, the rest is for tests.
# --omit=optional  leaves out @embedded-postgres/<platform> (PostgreSQL server
#                  binaries, unused when DATABASE_URL is set).
# --ignore-scripts the only install scripts belong to those packages.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts && npm cache clean --force

# What `start` reads at run time: the code, migrations and SQL functions.
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
COPY sql ./sql

USER node
EXPOSE 5678
CMD ["node", "bin/stockroom.js", "start"]
