<?php
use Psr\Http\Message\ResponseInterface as Response;
use Psr\Http\Message\ServerRequestInterface as Request;

require __DIR__ . '/../vendor/autoload.php';

$app = new \Slim\App();
$app->get('/', function (Request $request, Response $response) {
    $response->getBody()->write('Hello from Slim ' . \Slim\App::VERSION . ' on PHP ' . PHP_VERSION);
    return $response;
});
$app->get('/hello/{name}', function (Request $request, Response $response, array $args) {
    $response->getBody()->write(mb_strtoupper('hello, ' . $args['name']));
    return $response;
});
$app->run();
