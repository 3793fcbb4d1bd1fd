// AES-128 for the simulated memory controller: AES-NI when the CPU has it, a
// byte-oriented FIPS-197 implementation otherwise. Both produce identical results.
#include "caesni.h"
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <wmmintrin.h>
#include <emmintrin.h>
#define CAESNI_X86 1
#endif

static const uint8_t sbox[256] = {
0x63,0x7c,0x77,0x7b,0xf2,0x6b,0x6f,0xc5,0x30,0x01,0x67,0x2b,0xfe,0xd7,0xab,0x76,
0xca,0x82,0xc9,0x7d,0xfa,0x59,0x47,0xf0,0xad,0xd4,0xa2,0xaf,0x9c,0xa4,0x72,0xc0,
0xb7,0xfd,0x93,0x26,0x36,0x3f,0xf7,0xcc,0x34,0xa5,0xe5,0xf1,0x71,0xd8,0x31,0x15,
0x04,0xc7,0x23,0xc3,0x18,0x96,0x05,0x9a,0x07,0x12,0x80,0xe2,0xeb,0x27,0xb2,0x75,
0x09,0x83,0x2c,0x1a,0x1b,0x6e,0x5a,0xa0,0x52,0x3b,0xd6,0xb3,0x29,0xe3,0x2f,0x84,
0x53,0xd1,0x00,0xed,0x20,0xfc,0xb1,0x5b,0x6a,0xcb,0xbe,0x39,0x4a,0x4c,0x58,0xcf,
0xd0,0xef,0xaa,0xfb,0x43,0x4d,0x33,0x85,0x45,0xf9,0x02,0x7f,0x50,0x3c,0x9f,0xa8,
0x51,0xa3,0x40,0x8f,0x92,0x9d,0x38,0xf5,0xbc,0xb6,0xda,0x21,0x10,0xff,0xf3,0xd2,
0xcd,0x0c,0x13,0xec,0x5f,0x97,0x44,0x17,0xc4,0xa7,0x7e,0x3d,0x64,0x5d,0x19,0x73,
0x60,0x81,0x4f,0xdc,0x22,0x2a,0x90,0x88,0x46,0xee,0xb8,0x14,0xde,0x5e,0x0b,0xdb,
0xe0,0x32,0x3a,0x0a,0x49,0x06,0x24,0x5c,0xc2,0xd3,0xac,0x62,0x91,0x95,0xe4,0x79,
0xe7,0xc8,0x37,0x6d,0x8d,0xd5,0x4e,0xa9,0x6c,0x56,0xf4,0xea,0x65,0x7a,0xae,0x08,
0xba,0x78,0x25,0x2e,0x1c,0xa6,0xb4,0xc6,0xe8,0xdd,0x74,0x1f,0x4b,0xbd,0x8b,0x8a,
0x70,0x3e,0xb5,0x66,0x48,0x03,0xf6,0x0e,0x61,0x35,0x57,0xb9,0x86,0xc1,0x1d,0x9e,
0xe1,0xf8,0x98,0x11,0x69,0xd9,0x8e,0x94,0x9b,0x1e,0x87,0xe9,0xce,0x55,0x28,0xdf,
0x8c,0xa1,0x89,0x0d,0xbf,0xe6,0x42,0x68,0x41,0x99,0x2d,0x0f,0xb0,0x54,0xbb,0x16};

static uint8_t inv_sbox[256];
static int inv_sbox_ready = 0;
static int force_portable = 0;

static void build_inv_sbox(void) {
    if (inv_sbox_ready) return;
    for (int i = 0; i < 256; i++) inv_sbox[sbox[i]] = (uint8_t)i;
    inv_sbox_ready = 1;
}

static inline uint8_t xtime(uint8_t x) { return (uint8_t)((x << 1) ^ ((x >> 7) * 0x1b)); }

static inline uint8_t gmul(uint8_t a, uint8_t b) {
    uint8_t p = 0;
    while (b) {
        if (b & 1) p ^= a;
        a = xtime(a);
        b >>= 1;
    }
    return p;
}

static void expand_portable(const uint8_t key[16], uint8_t rk[176]) {
    static const uint8_t rcon[10] = {0x01,0x02,0x04,0x08,0x10,0x20,0x40,0x80,0x1b,0x36};
    memcpy(rk, key, 16);
    for (int i = 4; i < 44; i++) {
        uint8_t t[4];
        memcpy(t, rk + 4 * (i - 1), 4);
        if (i % 4 == 0) {
            uint8_t u = t[0];
            t[0] = (uint8_t)(sbox[t[1]] ^ rcon[i / 4 - 1]);
            t[1] = sbox[t[2]];
            t[2] = sbox[t[3]];
            t[3] = sbox[u];
        }
        for (int j = 0; j < 4; j++) rk[4 * i + j] = rk[4 * (i - 4) + j] ^ t[j];
    }
}

static void encrypt_portable(const uint8_t *rk, const uint8_t in[16], uint8_t out[16]) {
    uint8_t s[16];
    for (int i = 0; i < 16; i++) s[i] = in[i] ^ rk[i];
    for (int round = 1; round <= 10; round++) {
        uint8_t t[16];
        // SubBytes + ShiftRows (state is column-major: s[4*c + r])
        for (int c = 0; c < 4; c++)
            for (int r = 0; r < 4; r++) t[4 * c + r] = sbox[s[4 * ((c + r) & 3) + r]];
        if (round != 10) {
            for (int c = 0; c < 4; c++) {
                uint8_t a0 = t[4*c], a1 = t[4*c+1], a2 = t[4*c+2], a3 = t[4*c+3];
                uint8_t all = a0 ^ a1 ^ a2 ^ a3;
                t[4*c]   ^= all ^ xtime(a0 ^ a1);
                t[4*c+1] ^= all ^ xtime(a1 ^ a2);
                t[4*c+2] ^= all ^ xtime(a2 ^ a3);
                t[4*c+3] ^= all ^ xtime(a3 ^ a0);
            }
        }
        for (int i = 0; i < 16; i++) s[i] = t[i] ^ rk[16 * round + i];
    }
    memcpy(out, s, 16);
}

static void decrypt_portable(const uint8_t *rk, const uint8_t in[16], uint8_t out[16]) {
    build_inv_sbox();
    uint8_t s[16];
    for (int i = 0; i < 16; i++) s[i] = in[i] ^ rk[160 + i];
    for (int round = 9; round >= 0; round--) {
        uint8_t t[16];
        // InvShiftRows + InvSubBytes
        for (int c = 0; c < 4; c++)
            for (int r = 0; r < 4; r++) t[4 * ((c + r) & 3) + r] = inv_sbox[s[4 * c + r]];
        for (int i = 0; i < 16; i++) t[i] ^= rk[16 * round + i];
        if (round != 0) {
            for (int c = 0; c < 4; c++) {
                uint8_t a0 = t[4*c], a1 = t[4*c+1], a2 = t[4*c+2], a3 = t[4*c+3];
                t[4*c]   = gmul(a0,14) ^ gmul(a1,11) ^ gmul(a2,13) ^ gmul(a3,9);
                t[4*c+1] = gmul(a0,9)  ^ gmul(a1,14) ^ gmul(a2,11) ^ gmul(a3,13);
                t[4*c+2] = gmul(a0,13) ^ gmul(a1,9)  ^ gmul(a2,14) ^ gmul(a3,11);
                t[4*c+3] = gmul(a0,11) ^ gmul(a1,13) ^ gmul(a2,9)  ^ gmul(a3,14);
            }
        }
        memcpy(s, t, 16);
    }
    memcpy(out, s, 16);
}

#ifdef CAESNI_X86
__attribute__((target("aes,sse2")))
static void inverse_keys_aesni(const uint8_t *rk, uint8_t *dk) {
    _mm_store_si128((__m128i *)dk, _mm_load_si128((const __m128i *)(rk + 160)));
    for (int i = 1; i < 10; i++) {
        __m128i k = _mm_load_si128((const __m128i *)(rk + 16 * (10 - i)));
        _mm_store_si128((__m128i *)(dk + 16 * i), _mm_aesimc_si128(k));
    }
    _mm_store_si128((__m128i *)(dk + 160), _mm_load_si128((const __m128i *)rk));
}

__attribute__((target("aes,sse2")))
static void encrypt_aesni(const uint8_t *rk, const uint8_t in[16], uint8_t out[16]) {
    __m128i s = _mm_xor_si128(_mm_loadu_si128((const __m128i *)in), _mm_load_si128((const __m128i *)rk));
    for (int i = 1; i < 10; i++) s = _mm_aesenc_si128(s, _mm_load_si128((const __m128i *)(rk + 16 * i)));
    s = _mm_aesenclast_si128(s, _mm_load_si128((const __m128i *)(rk + 160)));
    _mm_storeu_si128((__m128i *)out, s);
}

__attribute__((target("aes,sse2")))
static void decrypt_aesni(const uint8_t *dk, const uint8_t in[16], uint8_t out[16]) {
    __m128i s = _mm_xor_si128(_mm_loadu_si128((const __m128i *)in), _mm_load_si128((const __m128i *)dk));
    for (int i = 1; i < 10; i++) s = _mm_aesdec_si128(s, _mm_load_si128((const __m128i *)(dk + 16 * i)));
    s = _mm_aesdeclast_si128(s, _mm_load_si128((const __m128i *)(dk + 160)));
    _mm_storeu_si128((__m128i *)out, s);
}
#endif

int caesni_has_aesni(void) {
#ifdef CAESNI_X86
    if (force_portable) return 0;
    return __builtin_cpu_supports("aes") ? 1 : 0;
#else
    return 0;
#endif
}

void caesni_force_portable(int force) { force_portable = force; }

void caesni_expand128(const uint8_t key[16], caesni_key128 *out) {
    expand_portable(key, out->rk);
    memset(out->dk, 0, sizeof out->dk);
#ifdef CAESNI_X86
    if (__builtin_cpu_supports("aes")) inverse_keys_aesni(out->rk, out->dk);
#endif
}

void caesni_encrypt_block(const caesni_key128 *key, const uint8_t in[16], uint8_t out[16]) {
#ifdef CAESNI_X86
    if (caesni_has_aesni()) { encrypt_aesni(key->rk, in, out); return; }
#endif
    encrypt_portable(key->rk, in, out);
}

void caesni_decrypt_block(const caesni_key128 *key, const uint8_t in[16], uint8_t out[16]) {
#ifdef CAESNI_X86
    if (caesni_has_aesni()) { decrypt_aesni(key->dk, in, out); return; }
#endif
    decrypt_portable(key->rk, in, out);
}
