// SPDX-License-Identifier: MIT
/* SHA-256/HMAC against published vectors, and the handshake proofs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "rdma/auth.h"

static void hex(const uint8_t *b, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_sha256_vectors(void **state)
{
	struct sha256 s;
	uint8_t d[32];
	char h[65];
	char million[1000];
	int i;

	(void)state;
	sha256_init(&s);
	sha256_final(&s, d);
	hex(d, 32, h);
	assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

	sha256_init(&s);
	sha256_update(&s, "abc", 3);
	sha256_final(&s, d);
	hex(d, 32, h);
	assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

	/* Two blocks, fed in uneven pieces. */
	sha256_init(&s);
	sha256_update(&s, "abcdbcdecdefdefgefghfghighij", 28);
	sha256_update(&s, "hijkijkljklmklmnlmnomnopnopq", 28);
	sha256_final(&s, d);
	hex(d, 32, h);
	assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

	memset(million, 'a', sizeof(million));
	sha256_init(&s);
	for (i = 0; i < 1000; i++)
		sha256_update(&s, million, sizeof(million));
	sha256_final(&s, d);
	hex(d, 32, h);
	assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_hmac_rfc4231(void **state)
{
	uint8_t key[131], d[32];
	char h[65];

	(void)state;
	hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, d);
	hex(d, 32, h);
	assert_string_equal(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

	/* A key longer than the block is hashed first (RFC 4231 case 6). */
	memset(key, 0xaa, sizeof(key));
	hmac_sha256(key, sizeof(key), "Test Using Larger Than Block-Size Key - Hash Key First",
		    54, d);
	hex(d, 32, h);
	assert_string_equal(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_proofs_differ_by_role_and_nonce(void **state)
{
	uint8_t cn[AUTH_NONCE_LEN] = { 1 }, sn[AUTH_NONCE_LEN] = { 2 };
	uint8_t a[32], b[32], c[32], d[32];

	(void)state;
	auth_proof("secret-1", 8, AUTH_SERVER_PROOF, cn, sn, a);
	auth_proof("secret-1", 8, AUTH_CLIENT_PROOF, cn, sn, b);
	auth_proof("secret-2", 8, AUTH_CLIENT_PROOF, cn, sn, c);
	sn[0] = 3;
	auth_proof("secret-1", 8, AUTH_CLIENT_PROOF, cn, sn, d);
	assert_false(auth_equal(a, b, 32));
	assert_false(auth_equal(b, c, 32));
	assert_false(auth_equal(b, d, 32));
	assert_true(auth_equal(a, a, 32));
}

static void test_nonces_are_fresh(void **state)
{
	uint8_t a[AUTH_NONCE_LEN], b[AUTH_NONCE_LEN];

	(void)state;
	assert_int_equal(auth_nonce(a), 0);
	assert_int_equal(auth_nonce(b), 0);
	assert_memory_not_equal(a, b, AUTH_NONCE_LEN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_hmac_rfc4231),
		cmocka_unit_test(test_proofs_differ_by_role_and_nonce),
		cmocka_unit_test(test_nonces_are_fresh),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
