mkdir -p /tmp/www
echo "mode=$MODE secret-length=${#SECRET_KEY} token=${API_TOKEN:+set}" > /tmp/www/index.html
exec httpd -f -p "$PORT" -h /tmp/www
