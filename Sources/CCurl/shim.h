#ifndef FMA_CCURL_SHIM_H
#define FMA_CCURL_SHIM_H
#include <curl/curl.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic: Swift needs typed wrappers. */
typedef size_t (*fma_curl_write_fn)(char *ptr, size_t size, size_t nmemb, void *userdata);
static inline CURLcode fma_curl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode fma_curl_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode fma_curl_setopt_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode fma_curl_setopt_write_fn(CURL *h, CURLoption o, fma_curl_write_fn v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode fma_curl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
typedef curl_socket_t (*fma_curl_opensocket_fn)(void *clientp, curlsocktype purpose, struct curl_sockaddr *address);
static inline CURLcode fma_curl_setopt_opensocket_fn(CURL *h, fma_curl_opensocket_fn v) {
    return curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, v);
}
/* The address of a curl_sockaddr (curl allocates room for IPv6 behind the struct sockaddr). */
static inline const void *fma_curl_sockaddr_address(const struct curl_sockaddr *a) { return &a->addr; }
#endif
