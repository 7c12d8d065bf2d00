package example;

import java.io.IOException;
import javax.servlet.http.HttpServlet;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.util.Jetty;

public class Main {
    public static class Hello extends HttpServlet {
        @Override
        protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            resp.setContentType("text/plain");
            resp.getWriter().print("Hello from Jetty " + Jetty.VERSION + " on Java " + System.getProperty("java.version"));
        }
    }

    public static void main(String[] args) throws Exception {
        Server server = new Server(Integer.parseInt(System.getenv().getOrDefault("PORT", "5000")));
        ServletContextHandler context = new ServletContextHandler();
        context.addServlet(Hello.class, "/*");
        server.setHandler(context);
        server.start();
        server.join();
    }
}
