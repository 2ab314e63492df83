/* Reference SRTP/SRTCP packets from libsrtp2 for tests/libsrtp.rs, and a
 * "check" mode that runs srtp_unprotect*() on packets produced by sipbridge.
 * Not part of the build: gcc libsrtp_gen.c -lsrtp2 && ./a.out */
#include <srtp2/srtp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char master[30] = {
    0xe1,0xf9,0x7a,0x0d,0x3e,0x01,0x8b,0xe0,0xd6,0x4f,0xa3,0x2c,0x06,0xde,0x41,0x39,
    0x0e,0xc6,0x75,0xad,0x49,0x8a,0xfe,0xeb,0xb6,0x96,0x0b,0x3a,0xab,0xe6};

static void hex(const char *name, const unsigned char *b, int n) {
    printf("%s ", name);
    for (int i = 0; i < n; i++) printf("%02x", b[i]);
    printf("\n");
}

static srtp_t make(int suite32, int inbound) {
    srtp_policy_t p;
    memset(&p, 0, sizeof p);
    if (suite32) srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&p.rtp);
    else srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtp);
    /* RFC 4568: SRTCP keeps an 80-bit tag in both suites. */
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtcp);
    p.ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound;
    p.key = master;
    p.window_size = 128;
    srtp_t s;
    if (srtp_create(&s, &p) != srtp_err_status_ok) { fprintf(stderr, "create\n"); exit(1); }
    return s;
}

/* RTP: V=2, PT 0, given seq, ts = seq*160, SSRC cafebabe, payload i*7+seq. */
static int rtp(unsigned char *b, unsigned seq, int plen, int csrc_ext) {
    int n = 0;
    b[n++] = 0x80 | (csrc_ext ? 0x11 : 0);
    b[n++] = 0x00;
    b[n++] = seq >> 8; b[n++] = seq;
    unsigned ts = seq * 160;
    b[n++] = ts >> 24; b[n++] = ts >> 16; b[n++] = ts >> 8; b[n++] = ts;
    b[n++] = 0xca; b[n++] = 0xfe; b[n++] = 0xba; b[n++] = 0xbe;
    if (csrc_ext) {
        b[n++] = 0x11; b[n++] = 0x22; b[n++] = 0x33; b[n++] = 0x44;           /* CSRC */
        b[n++] = 0xbe; b[n++] = 0xde; b[n++] = 0x00; b[n++] = 0x01;           /* one-byte ext, 1 word */
        b[n++] = 0x10; b[n++] = 0x7f; b[n++] = 0x00; b[n++] = 0x00;
    }
    for (int i = 0; i < plen; i++) b[n++] = (unsigned char)(i * 7 + seq);
    return n;
}

/* RTCP RR from cafebabe with one report block, then an SDES CNAME. */
static int rtcp(unsigned char *b) {
    static const unsigned char rr[] = {
        0x81,0xc9,0x00,0x07, 0xca,0xfe,0xba,0xbe,
        0x12,0x34,0x56,0x78, 0x01,0x00,0x00,0x02, 0x00,0x00,0xff,0xfe,
        0x00,0x00,0x00,0x10, 0x00,0x00,0x00,0x00, 0x00,0x00,0x00,0x00,
        0x81,0xca,0x00,0x03, 0xca,0xfe,0xba,0xbe, 0x01,0x03,'s','i', 'p',0x00,0x00,0x00};
    memcpy(b, rr, sizeof rr);
    return sizeof rr;
}

static int unhex(const char *s, unsigned char *out) {
    int n = 0;
    for (; s[0] && s[1]; s += 2) { unsigned v; sscanf(s, "%2x", &v); out[n++] = v; }
    return n;
}

int main(int argc, char **argv) {
    srtp_init();
    unsigned char b[2048];
    if (argc > 1 && !strcmp(argv[1], "check")) {
        /* check rtp80|rtp32|rtcp HEX...: unprotect in order, print plaintext. */
        int suite32 = !strcmp(argv[2], "rtp32");
        int is_rtcp = !strcmp(argv[2], "rtcp");
        srtp_t rx = make(suite32, 1);
        for (int i = 3; i < argc; i++) {
            int n = unhex(argv[i], b);
            srtp_err_status_t st = is_rtcp ? srtp_unprotect_rtcp(rx, b, &n) : srtp_unprotect(rx, b, &n);
            if (st) { printf("FAIL %d status %d\n", i - 3, st); return 1; }
            hex("ok", b, n);
        }
        return 0;
    }
    printf("libsrtp %s\n", srtp_get_version_string());
    srtp_t tx = make(0, 0);
    unsigned seqs[] = {65534, 65535, 0, 1};
    for (int i = 0; i < 4; i++) {
        int n = rtp(b, seqs[i], 20, 0);
        hex("rtp80_plain", b, n);
        if (srtp_protect(tx, b, &n)) return 1;
        hex("rtp80_srtp", b, n);
    }
    int n = rtp(b, 2, 20, 1);
    hex("rtp80_ext_plain", b, n);
    if (srtp_protect(tx, b, &n)) return 1;
    hex("rtp80_ext_srtp", b, n);
    for (int i = 0; i < 2; i++) {
        n = rtcp(b);
        hex("rtcp_plain", b, n);
        if (srtp_protect_rtcp(tx, b, &n)) return 1;
        hex("rtcp_srtcp", b, n);
    }
    srtp_t tx32 = make(1, 0);
    n = rtp(b, 1000, 20, 0);
    hex("rtp32_plain", b, n);
    if (srtp_protect(tx32, b, &n)) return 1;
    hex("rtp32_srtp", b, n);
    return 0;
}
