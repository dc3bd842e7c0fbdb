/*
 * The decrypter library of the TLS tests (tls.decrypter_lib): its
 * "cipher" is the password XOR 0x5a in hex (tk_tls_cipher), and it fails
 * (-1) on anything else or when the password does not fit.
 */
#include <stddef.h>
#include <stdio.h>

__attribute__((visibility("default"))) int DecryptPassword(const char *cipher,
                                                           size_t cipher_len,
                                                           char *plain,
                                                           size_t *plain_len);

int DecryptPassword(const char *cipher, size_t cipher_len, char *plain,
                    size_t *plain_len)
{
    size_t n = cipher_len / 2;
    unsigned byte;

    if (cipher_len % 2 != 0 || n > *plain_len) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char hex[3] = {cipher[2 * i], cipher[2 * i + 1], '\0'};

        if (sscanf(hex, "%2x", &byte) != 1) {
            return -1;
        }
        plain[i] = (char)(byte ^ 0x5a);
    }
    *plain_len = n;
    return 0;
}
