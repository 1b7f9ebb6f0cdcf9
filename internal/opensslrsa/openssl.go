//go:build cgo && openssl

package opensslrsa

/*
#cgo LDFLAGS: -lcrypto
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

// vouch_load imports a PKCS #1 DER RSA private key.
static EVP_PKEY *vouch_load(const unsigned char *der, long len) {
	const unsigned char *p = der;
	EVP_PKEY *k = d2i_PrivateKey(EVP_PKEY_RSA, NULL, &p, len);
	if (k == NULL || p != der + len) {
		EVP_PKEY_free(k);
		ERR_clear_error();
		return NULL;
	}
	return k;
}

// vouch_sign makes a PKCS #1 v1.5 signature of a digest made with md
// (1: SHA-1, 256: SHA-256); 1 on success.
static int vouch_sign(EVP_PKEY *k, int md, const unsigned char *dig, size_t dlen, unsigned char *sig, size_t *slen) {
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k, NULL);
	if (ctx == NULL) {
		ERR_clear_error();
		return 0;
	}
	int ok = EVP_PKEY_sign_init(ctx) > 0 &&
		EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
		EVP_PKEY_CTX_set_signature_md(ctx, md == 1 ? EVP_sha1() : EVP_sha256()) > 0 &&
		EVP_PKEY_sign(ctx, sig, slen, dig, dlen) > 0;
	EVP_PKEY_CTX_free(ctx);
	if (!ok)
		ERR_clear_error();
	return ok;
}

static const char *vouch_version(void) { return OpenSSL_version(OPENSSL_VERSION); }
*/
import "C"

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"io"
	"runtime"
	"sync/atomic"
	"unsafe"
)

var fallbacks atomic.Uint64

// Fallbacks counts the signatures crypto/rsa made because OpenSSL failed
// or made one that did not verify (vouch_rsa_openssl_fallbacks_total).
func Fallbacks() uint64 { return fallbacks.Load() }

// Available is true in a build that signs RSA through OpenSSL.
const Available = true

// Version is the OpenSSL library in use ("OpenSSL 3.0.19 ...").
func Version() string { return C.GoString(C.vouch_version()) }

// Wrap returns a crypto.Signer that makes an RSA key's PKCS #1 v1.5
// signatures (SHA-256 and SHA-1 digests) with OpenSSL; nil for any other
// kind of key.
func Wrap(key crypto.Signer) (crypto.Signer, error) {
	priv, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, nil
	}
	der := x509.MarshalPKCS1PrivateKey(priv)
	pkey := C.vouch_load((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)))
	clear(der)
	if pkey == nil {
		return nil, errors.New("openssl: the RSA key was not accepted")
	}
	s := &signer{priv: priv, pkey: pkey}
	runtime.AddCleanup(s, func(p *C.EVP_PKEY) { C.EVP_PKEY_free(p) }, pkey)
	return s, nil
}

type signer struct {
	priv *rsa.PrivateKey // crypto/rsa's key: Public and the check of each signature
	pkey *C.EVP_PKEY
}

func (s *signer) Public() crypto.PublicKey { return s.priv.Public() }

// Sign signs digest. rand is not used by OpenSSL: PKCS #1 v1.5 is
// deterministic, and OpenSSL blinds with its own generator. Options other
// than a SHA-256 or SHA-1 PKCS #1 v1.5 signature go to crypto/rsa, and so
// does the signature when OpenSSL fails or its signature does not verify:
// slower, never wrong and never missing.
func (s *signer) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	md := 0
	switch h := opts.HashFunc(); {
	case isPSS(opts):
	case h == crypto.SHA256 && len(digest) == h.Size():
		md = 256
	case h == crypto.SHA1 && len(digest) == h.Size():
		md = 1
	}
	if md == 0 {
		return s.priv.Sign(rand, digest, opts)
	}
	sig := make([]byte, s.priv.Size())
	n := C.size_t(len(sig))
	ok := C.vouch_sign(s.pkey, C.int(md), (*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), &n)
	runtime.KeepAlive(s)
	if ok != 1 || int(n) != len(sig) || rsa.VerifyPKCS1v15(&s.priv.PublicKey, opts.HashFunc(), digest, sig) != nil {
		fallbacks.Add(1)
		return s.priv.Sign(rand, digest, opts)
	}
	return sig, nil
}

func isPSS(opts crypto.SignerOpts) bool {
	_, ok := opts.(*rsa.PSSOptions)
	return ok
}
