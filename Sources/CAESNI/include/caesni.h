#ifndef CAESNI_H
#define CAESNI_H

#include <stdint.h>

/// An expanded AES-128 key: the FIPS-197 round keys and, for the AES-NI path,
/// the round keys of the equivalent inverse cipher.
typedef struct {
    _Alignas(16) uint8_t rk[176];
    _Alignas(16) uint8_t dk[176];
} caesni_key128;

/// Expands a 16-byte AES-128 key.
void caesni_expand128(const uint8_t key[16], caesni_key128 *out);

/// Encrypts one 16-byte block (in and out may alias).
void caesni_encrypt_block(const caesni_key128 *key, const uint8_t in[16], uint8_t out[16]);

/// Decrypts one 16-byte block (in and out may alias).
void caesni_decrypt_block(const caesni_key128 *key, const uint8_t in[16], uint8_t out[16]);

/// 1 when the CPU has AES-NI and the fast path is in use.
int caesni_has_aesni(void);

/// Forces the portable implementation (nonzero) or restores CPU detection (zero). For tests.
void caesni_force_portable(int force);

#endif
