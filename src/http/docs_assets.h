// The files of src/docs/, embedded at build time (see the Makefile), each
// NUL-terminated.
#ifndef OTPD_DOCS_ASSETS_H_
#define OTPD_DOCS_ASSETS_H_

namespace otpd {

extern const char kDocsCss[];  // src/docs/docs.css
extern const char kDocsJs[];   // src/docs/docs.js

}  // namespace otpd

#endif  // OTPD_DOCS_ASSETS_H_
