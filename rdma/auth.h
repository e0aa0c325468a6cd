/* SPDX-License-Identifier: MIT */
/*
 * Shared-secret challenge-response for the handshake (MIGRDMA_SECRET).
 *
 * The client sends a nonce in its connect request; the server answers with
 * its own nonce and a proof, HMAC-SHA256(secret, "migrdma-server" | cn | sn);
 * the client checks it and sends HMAC-SHA256(secret, "migrdma-client" | cn | sn)
 * as its first message.  The server hands the connection to accept() only
 * once that proof checks out.  Different labels keep a proof from being
 * reflected back; fresh nonces on both sides keep it from being replayed.
 */
#ifndef MIGRDMA_RDMA_AUTH_H
#define MIGRDMA_RDMA_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_NONCE_LEN 16
#define AUTH_PROOF_LEN 32

struct sha256 {
	uint32_t h[8];
	uint64_t len;
	uint8_t buf[64];
	size_t used;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[32]);

void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
		 uint8_t out[32]);

enum auth_role { AUTH_SERVER_PROOF, AUTH_CLIENT_PROOF };

void auth_proof(const void *secret, size_t secret_len, enum auth_role role,
		const uint8_t cn[AUTH_NONCE_LEN], const uint8_t sn[AUTH_NONCE_LEN],
		uint8_t out[AUTH_PROOF_LEN]);

/* Compare without leaking how many bytes matched. */
bool auth_equal(const uint8_t *a, const uint8_t *b, size_t len);

/* Fill with unpredictable bytes; -1 if the kernel has none to give. */
int auth_nonce(uint8_t out[AUTH_NONCE_LEN]);

#endif
