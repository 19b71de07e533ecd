"""What a browser sees: the pages (landing, and issue 19's catalogue, sign-in and consent), the one
layer every page passes through (security headers, session cookie, CSRF), and CORS for browser
apps calling the API. docs/ARCHITECTURE.md, "Browser pages and CORS", draws where they sit."""
